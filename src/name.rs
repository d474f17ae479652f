//! The function-name rule, in one place: every check and every message about a name uses it.

/// What a function name is, for messages.
pub const RULE: &str =
    "lowercase letters, digits, `_` and `-`, at most 64, starting with a letter or digit";

/// Whether `name` is a valid function name: `^[a-z0-9][a-z0-9_-]{0,63}$`.
pub fn is_valid(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-')
}

/// `Err` naming the rule when `name` breaks it: "`Bad` is not a function name (RULE)".
pub fn check(name: &str) -> Result<(), String> {
    if is_valid(name) {
        Ok(())
    } else {
        Err(format!("`{name}` is not a function name ({RULE})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_pattern() {
        assert!(is_valid("hello"));
        assert!(is_valid("on-user_insert2"));
        assert!(!is_valid("Hello"));
        assert!(!is_valid("-x"));
        assert!(!is_valid(&"a".repeat(65)));
        assert!(check("Hello").unwrap_err().contains("at most 64"));
    }
}
