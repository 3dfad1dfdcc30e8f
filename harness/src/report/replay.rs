//! The command that runs a scenario again the same way: the same seed, the
//! same kind of proxy, the same flags. A run's JSON report carries it and
//! its HTML page shows it; a sweep's summary and page show it for each
//! seed that failed. All build it here.

use crate::shell;

/// One flag of the replay command: `--sim`, or `--proxy-bin PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    name: &'static str,
    value: Option<String>,
}

impl Flag {
    /// A flag without a value.
    pub fn bare(name: &'static str) -> Flag {
        Flag { name, value: None }
    }

    /// A flag and its value.
    pub fn with(name: &'static str, value: impl Into<String>) -> Flag {
        Flag {
            name,
            value: Some(value.into()),
        }
    }
}

/// `mcp-harness run FLAGS --seed SEED FILE`, each argument quoted for a
/// POSIX shell where it needs to be.
pub fn command(flags: &[Flag], seed: u64, file: &str) -> String {
    let mut words = vec!["mcp-harness".to_owned(), "run".to_owned()];
    for flag in flags {
        words.push(flag.name.to_owned());
        words.extend(flag.value.as_deref().map(shell::quote));
    }
    words.push("--seed".into());
    words.push(seed.to_string());
    words.push(shell::quote(file));
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_come_before_the_seed_and_odd_words_are_quoted() {
        let file = "scenarios/outage.yaml";
        assert_eq!(
            command(&[], 7, file),
            "mcp-harness run --seed 7 scenarios/outage.yaml"
        );
        assert_eq!(
            command(
                &[Flag::with("--proxy-bin", "/opt/my proxy/mcp-proxy")],
                7,
                file
            ),
            "mcp-harness run --proxy-bin '/opt/my proxy/mcp-proxy' --seed 7 scenarios/outage.yaml"
        );
        assert_eq!(
            command(
                &[
                    Flag::with("--target", "http://127.0.0.1:8080/mcp"),
                    Flag::with("--target-cmd", "gw --config {config}")
                ],
                7,
                file
            ),
            "mcp-harness run --target http://127.0.0.1:8080/mcp --target-cmd 'gw --config {config}' --seed 7 scenarios/outage.yaml"
        );
        assert_eq!(
            command(&[Flag::bare("--sim")], 4, "it's.yaml"),
            r"mcp-harness run --sim --seed 4 'it'\''s.yaml'"
        );
    }
}
