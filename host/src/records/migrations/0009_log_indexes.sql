-- The decision log's indexes hold only the entries they are read by.
-- Most of the log is stateless decisions, which belong to no deployment
-- and commit to no record row; every index entry costs the writer a
-- b-tree insert per decision, so those two indexes leave such entries
-- out (a query by deployment or by record names one, which implies the
-- column is not NULL, so both dialects still use them). The index on
-- deployment_id alone is the prefix of (deployment_id, seq) and goes.
DROP INDEX decision_log_deployment;
DROP INDEX decision_log_deployment_seq;
CREATE INDEX decision_log_deployment_seq ON decision_log(deployment_id, seq) WHERE deployment_id IS NOT NULL;
DROP INDEX decision_log_record;
CREATE INDEX decision_log_record ON decision_log(record_table, record_id, seq) WHERE record_table IS NOT NULL;
