//! Strings as evidence: a blank string documents nothing.

/// The string is present and not blank.
pub fn present(value: &Option<String>) -> bool {
    value.as_deref().is_some_and(|s| !s.trim().is_empty())
}

/// The string, if present and not blank.
pub fn non_blank(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Two identities name the same person: compared trimmed and without regard
/// to ASCII case, because `A.Lee` and `a.lee ` are one reviewer.
pub fn same_identity(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_strings_are_not_present() {
        assert!(!present(&None));
        assert!(!present(&Some(String::new())));
        assert!(!present(&Some("  \t".into())));
        assert!(present(&Some("j.doe".into())));
    }

    #[test]
    fn identities_compare_trimmed_and_case_insensitively() {
        assert!(same_identity("A.Lee", " a.lee"));
        assert!(!same_identity("a.lee", "j.doe"));
    }
}
