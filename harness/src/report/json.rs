//! Reports as JSON: an array with one object per scenario run, for tools
//! that read results (dashboards, comparisons across runs). Durations are
//! whole microseconds in fields ending in `_us`.

use std::path::Path;

use super::RunReport;

/// The reports as a pretty-printed JSON array.
pub fn to_string(reports: &[RunReport]) -> serde_json::Result<String> {
    serde_json::to_string_pretty(reports)
}

/// Writes the reports as a JSON array to `path` (replacing it).
pub fn write(path: &Path, reports: &[RunReport]) -> std::io::Result<()> {
    let mut text = to_string(reports)?;
    text.push('\n');
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample;

    #[test]
    fn reports_serialise_with_their_field_names() {
        let text = to_string(&[sample(), sample()]).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let list = value.as_array().unwrap();
        assert_eq!(list.len(), 2);
        let report = &list[0];
        let mut keys: Vec<&str> = report
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "backends",
                "call_log",
                "calls",
                "checks",
                "duration_us",
                "error",
                "faults",
                "file",
                "missed_slots",
                "mode",
                "phases",
                "replay",
                "scenario",
                "schema_version",
                "seed",
                "timeline"
            ]
        );
        assert_eq!(report["scenario"], "outage");
        assert_eq!(report["seed"], 7);
        assert_eq!(report["duration_us"], 12_500_000);
        assert_eq!(report["error"], serde_json::Value::Null);
        let check = &report["checks"][0];
        for key in [
            "name", "kind", "line", "expected", "observed", "passed", "detail", "figures",
        ] {
            assert!(check.get(key).is_some(), "check lacks {key}: {check}");
        }
        assert_eq!(check["kind"], "threshold");
        let phase = &report["phases"][0];
        for key in [
            "label",
            "from_us",
            "to_us",
            "calls",
            "errors",
            "error_rate",
            "p50_us",
            "p99_us",
            "max_us",
        ] {
            assert!(phase.get(key).is_some(), "phase lacks {key}: {phase}");
        }
    }

    #[test]
    fn write_puts_the_array_in_the_file() {
        let path = std::env::temp_dir().join(format!("report-json-{}.json", std::process::id()));
        write(&path, &[sample()]).unwrap();
        let value: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(value[0]["file"], "scenarios/outage.yaml");
        std::fs::remove_file(&path).unwrap();
    }
}
