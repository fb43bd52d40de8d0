-- The wrk script of the HTTP benches (http.sh, adapters.sh, replicas.sh):
-- every request POSTs the file named by $BODY as JSON, with the bearer
-- token $GW when it is set (adapters.sh passes its token with -H instead).
local f = assert(io.open(os.getenv("BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
local token = os.getenv("GW")
if token then
    wrk.headers["Authorization"] = "Bearer " .. token
end
