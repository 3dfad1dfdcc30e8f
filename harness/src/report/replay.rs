//! The command that runs a scenario again the same way: the same seed, the
//! same kind of proxy. Reports print it, and a sweep prints it for the seed
//! that failed; both build it here.

/// How a run reached its proxy, as `mcp-harness run` flags tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runner<'a> {
    /// The proxy library in the harness's process (no flag).
    InProcess,
    /// `--proxy-bin PATH`.
    Binary(&'a std::path::Path),
    /// `--target URL`.
    Target(&'a str),
    /// `--sim`.
    Simulation,
}

/// `mcp-harness run [FLAGS] --seed SEED FILE`, each argument quoted for a
/// POSIX shell where it needs to be.
pub fn command(runner: Runner<'_>, seed: u64, file: &str) -> String {
    let mut words = vec!["mcp-harness".to_owned(), "run".to_owned()];
    match runner {
        Runner::InProcess => {}
        Runner::Binary(path) => {
            words.push("--proxy-bin".into());
            words.push(quoted(&path.display().to_string()));
        }
        Runner::Target(url) => {
            words.push("--target".into());
            words.push(quoted(url));
        }
        Runner::Simulation => words.push("--sim".into()),
    }
    words.push("--seed".into());
    words.push(seed.to_string());
    words.push(quoted(file));
    words.join(" ")
}

/// `word` as one shell word: unchanged when it holds only characters no
/// shell treats specially, else in single quotes.
fn quoted(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_runner_has_its_flags_and_odd_words_are_quoted() {
        let file = "scenarios/outage.yaml";
        assert_eq!(
            command(Runner::InProcess, 7, file),
            "mcp-harness run --seed 7 scenarios/outage.yaml"
        );
        assert_eq!(
            command(Runner::Binary("/opt/my proxy/mcp-proxy".as_ref()), 7, file),
            "mcp-harness run --proxy-bin '/opt/my proxy/mcp-proxy' --seed 7 scenarios/outage.yaml"
        );
        assert_eq!(
            command(Runner::Target("http://127.0.0.1:8080/mcp"), 7, file),
            "mcp-harness run --target http://127.0.0.1:8080/mcp --seed 7 scenarios/outage.yaml"
        );
        assert_eq!(
            command(Runner::Simulation, 4, "it's.yaml"),
            r"mcp-harness run --sim --seed 4 'it'\''s.yaml'"
        );
    }
}
