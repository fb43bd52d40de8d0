//! Sign-in that only the console's own form can perform.
//!
//! A session is worth having for another site: a page elsewhere could post
//! a token it holds (its own, with fewer rights, to plant a session the
//! user then acts in) or ride a browser that pastes one. So the sign-in
//! form carries a fresh random token twice, as a hidden field and in a
//! cookie scoped to the form's path (`HttpOnly`, `SameSite=Strict`): a page
//! on another origin can read neither, and cannot set the cookie. The
//! post is also refused when the browser says it came from elsewhere
//! (`Origin` naming another host than the request's `Host`, or
//! `Sec-Fetch-Site: cross-site`). An `Origin: null` is what browsers send
//! for the console's own form, because its pages set `Referrer-Policy:
//! no-referrer`; it says nothing either way, and the form token decides.

use axum::http::{HeaderMap, header};

use super::session;

/// The cookie holding the sign-in form's token.
pub const COOKIE: &str = "sg_sign_in";
/// How long a sign-in form stays usable.
pub const MAX_AGE_SECONDS: u64 = 3600;

/// A fresh form token.
pub fn new_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The `Set-Cookie` value carrying `token` to the form's own path.
pub fn cookie(token: &str) -> String {
    format!(
        "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/ui/sign-in; Max-Age={MAX_AGE_SECONDS}"
    )
}

/// Why a sign-in post is refused, for the page that says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    OtherOrigin,
    NoFormToken,
}

impl Refusal {
    pub fn message(self) -> &'static str {
        match self {
            Refusal::OtherOrigin => {
                "Sign-in is accepted only from this console's own page, not from another site."
            }
            Refusal::NoFormToken => {
                "The sign-in form has expired or was not sent from this console's page; sign in again from the form below."
            }
        }
    }
}

/// Accepts a sign-in post only from the console's own form.
pub fn check(headers: &HeaderMap, form_token: &str) -> Result<(), Refusal> {
    if headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"))
    {
        return Err(Refusal::OtherOrigin);
    }
    if let Some(origin) = headers
        .get(header::ORIGIN)
        .filter(|o| o.as_bytes() != b"null")
    {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        let same = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .is_some_and(|(_, authority)| !host.is_empty() && authority.eq_ignore_ascii_case(host));
        if !same {
            return Err(Refusal::OtherOrigin);
        }
    }
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| session::cookie(h, COOKIE))
        .unwrap_or_default();
    if form_token.is_empty() || cookie.is_empty() || !session::same_secret(form_token, cookie) {
        return Err(Refusal::NoFormToken);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn only_the_forms_own_token_cookie_and_origin_pass() {
        let t = new_token();
        let cookie = format!("{COOKIE}={t}");
        let ok = headers(&[
            ("host", "console.example:8443"),
            ("origin", "https://console.example:8443"),
            ("cookie", &cookie),
        ]);
        assert_eq!(check(&ok, &t), Ok(()));
        // No Origin (a non-browser client): the token pair still decides.
        let no_origin = headers(&[("host", "h"), ("cookie", &cookie)]);
        assert_eq!(check(&no_origin, &t), Ok(()));
        // `Origin: null` (the form under `Referrer-Policy: no-referrer`).
        let null = headers(&[("host", "h"), ("origin", "null"), ("cookie", &cookie)]);
        assert_eq!(check(&null, &t), Ok(()));
        let null_forged = headers(&[("host", "h"), ("origin", "null")]);
        assert_eq!(check(&null_forged, &t), Err(Refusal::NoFormToken));
        for (h, why) in [
            (
                headers(&[
                    ("host", "h"),
                    ("origin", "https://evil.example"),
                    ("cookie", &cookie),
                ]),
                Refusal::OtherOrigin,
            ),
            (
                headers(&[
                    ("host", "h"),
                    ("sec-fetch-site", "cross-site"),
                    ("cookie", &cookie),
                ]),
                Refusal::OtherOrigin,
            ),
            (headers(&[("host", "h")]), Refusal::NoFormToken),
        ] {
            assert_eq!(check(&h, &t), Err(why));
        }
        assert_eq!(check(&ok, &new_token()), Err(Refusal::NoFormToken));
        assert_eq!(check(&ok, ""), Err(Refusal::NoFormToken));
    }
}
