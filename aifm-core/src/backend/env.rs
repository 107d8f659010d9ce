//! The `AIFM_*` environment variables that hold numbers, read one way for every backend
//! builder's `from_env` (the TCP and Redis builders), so a bad value always gets the same
//! typed error naming the variable.

use crate::error::{Error, Result};

/// The number in environment variable `var` (surrounding blanks ignored), `None` when it is
/// unset: the builders' `from_env` share this, so every `AIFM_*` number reads the same way.
///
/// # Errors
/// [`Error::Config`] naming the variable when it is set but not a non-negative integer.
pub(crate) fn env_number(var: &str) -> Result<Option<u64>> {
    match std::env::var(var) {
        Ok(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| Error::Config(format!("{var}={v:?} is not a number"))),
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::env_number;
    use crate::Error;

    #[test]
    fn env_numbers_parse_trimmed_and_name_the_variable_when_bad() {
        // Variables of this test only: no other test reads them.
        std::env::set_var("AIFM_TEST_ENV_NUMBER_GOOD", " 250 ");
        std::env::set_var("AIFM_TEST_ENV_NUMBER_BAD", "12ms");
        assert_eq!(env_number("AIFM_TEST_ENV_NUMBER_GOOD").unwrap(), Some(250));
        assert_eq!(env_number("AIFM_TEST_ENV_NUMBER_UNSET").unwrap(), None);
        match env_number("AIFM_TEST_ENV_NUMBER_BAD") {
            Err(Error::Config(m)) => assert!(m.contains("AIFM_TEST_ENV_NUMBER_BAD"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
