//! Reports as JSON: an array with one object per scenario run, for tools
//! that read results (dashboards, comparisons across runs), and read back
//! to render again (`mcp-harness report`). Durations are whole
//! microseconds in fields ending in `_us`. The file's JSON Schema is
//! generated from the report's types ([`schema`]) and committed as
//! `docs/report-schema.json`, which a test keeps equal to it.

use std::path::{Path, PathBuf};

use super::{RunReport, SCHEMA_VERSION};

/// The reports as a pretty-printed JSON array.
pub fn to_string(reports: &[RunReport]) -> serde_json::Result<String> {
    serde_json::to_string_pretty(reports)
}

/// The JSON Schema of a report file (an array of [`RunReport`]), pretty-printed.
pub fn schema() -> String {
    let schema = schemars::schema_for!(Vec<RunReport>);
    // A schema of plain data types always serialises.
    serde_json::to_string_pretty(&schema).unwrap_or_default() + "\n"
}

/// Writes the reports as a JSON array to `path` (replacing it).
pub fn write(path: &Path, reports: &[RunReport]) -> std::io::Result<()> {
    let mut text = to_string(reports)?;
    text.push('\n');
    std::fs::write(path, text)
}

/// Why a JSON report could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not a JSON array of reports.
    #[error("{}: not a report written by `mcp-harness run --json`: {source}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with its line and column.
        source: serde_json::Error,
    },
    /// A report of another shape than this harness reads.
    #[error(
        "{}: report {index} was written by {} mcp-harness: schema_version {found}, this one reads {SCHEMA_VERSION}",
        path.display(),
        if *found > u64::from(SCHEMA_VERSION) { "a newer" } else { "an older" }
    )]
    OtherSchema {
        /// The file.
        path: PathBuf,
        /// Which report of the array (0-based).
        index: usize,
        /// Its version.
        found: u64,
    },
    /// An empty array.
    #[error("{}: holds no reports", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// Reads the reports that [`write`] wrote to `path`: each report's
/// `schema_version` is checked before its shape, so a report of another
/// version is named as such rather than as a broken file. The timeline's
/// buckets and the backend samples are put in time order (a file written
/// by hand or by another tool may not have them so).
pub fn read(path: &Path) -> Result<Vec<RunReport>, ReadError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReadError::Io {
        path: path.to_owned(),
        source,
    })?;
    let invalid = |source| ReadError::Invalid {
        path: path.to_owned(),
        source,
    };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(invalid)?;
    if let Some(list) = value.as_array() {
        for (index, report) in list.iter().enumerate() {
            let found = report
                .get("schema_version")
                .and_then(serde_json::Value::as_u64);
            if let Some(found) = found.filter(|v| *v != u64::from(SCHEMA_VERSION)) {
                return Err(ReadError::OtherSchema {
                    path: path.to_owned(),
                    index,
                    found,
                });
            }
        }
    }
    let mut reports: Vec<RunReport> = serde_json::from_value(value).map_err(invalid)?;
    if reports.is_empty() {
        return Err(ReadError::Empty {
            path: path.to_owned(),
        });
    }
    for report in &mut reports {
        report.timeline.buckets.sort_by_key(|b| b.at_us);
        report.backends.sort_by_key(|s| s.at_us);
    }
    Ok(reports)
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
        // Figures are numbers, not text.
        let measure = &report["checks"][1]["figures"]["measures"][0];
        assert_eq!(measure["name"], "error_rate");
        assert_eq!(measure["value"].as_f64(), Some(0.03));
        assert_eq!(measure["max"].as_f64(), Some(0.0));
        assert_eq!(
            (measure["count"].as_u64(), measure["total"].as_u64()),
            (Some(3), Some(100))
        );
        assert_eq!(measure["passed"], false);
        assert_eq!(
            report["checks"][1]["figures"]["window"][0]["to_us"],
            serde_json::Value::Null
        );
        // The run in time is there, even when empty.
        assert_eq!(report["timeline"]["buckets"], serde_json::json!([]));
        assert!(report["call_log"].is_array() && report["backends"].is_array());
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
    fn the_committed_schema_is_the_generated_one() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/report-schema.json");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        // Compared as JSON values: the order of keys depends on whether
        // serde_json's `preserve_order` is on in this build (a dependency of
        // another crate of the workspace turns it on in `cargo test`).
        let as_value = |text: &str| serde_json::from_str::<serde_json::Value>(text).ok();
        assert!(
            as_value(&committed).is_some() && as_value(&committed) == as_value(&schema()),
            "docs/report-schema.json differs from the report's types; regenerate it with \
             `cargo run -p mcp-harness -- schema > docs/report-schema.json`"
        );
    }

    #[test]
    fn what_write_wrote_reads_back_the_same() {
        let dir = std::env::temp_dir().join(format!("report-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("run.json");
        let reports = [crate::report::html::tests::outage_run(), sample()];
        write(&path, &reports).unwrap();
        let back = read(&path).unwrap();
        assert_eq!(to_string(&back).unwrap(), to_string(&reports).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_bad_file_is_named_with_what_is_wrong() {
        let dir = std::env::temp_dir().join(format!("report-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.json");
        let error = read(&missing).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!("cannot read {}: ", missing.display())),
            "{error}"
        );

        let cases = [
            (
                "not json",
                "oops",
                "not a report written by `mcp-harness run --json`: expected value at line 1 column 1",
            ),
            (
                "wrong shape",
                "[{\"scenario\": 3}]",
                "not a report written by `mcp-harness run --json`: invalid type: integer `3`",
            ),
            ("empty", "[]", "holds no reports"),
        ];
        for (name, text, message) in cases {
            let path = dir.join(format!("{name}.json"));
            std::fs::write(&path, text).unwrap();
            let error = read(&path).unwrap_err().to_string();
            assert!(
                error.starts_with(&format!("{}: {message}", path.display())),
                "{name}: {error}"
            );
        }

        for (name, version, whose) in [
            ("newer", SCHEMA_VERSION + 1, "a newer"),
            ("older", SCHEMA_VERSION - 1, "an older"),
        ] {
            // Another version, and a shape this one does not read: the
            // version is what is named.
            let mut other = serde_json::to_value([sample(), sample()]).unwrap();
            other[1]["schema_version"] = version.into();
            other[1]["timeline"] = "drawn differently".into();
            let path = dir.join(format!("{name}.json"));
            std::fs::write(&path, other.to_string()).unwrap();
            let error = read(&path).unwrap_err().to_string();
            assert_eq!(
                error,
                format!(
                    "{}: report 1 was written by {whose} mcp-harness: schema_version {version}, this one reads {SCHEMA_VERSION}",
                    path.display()
                )
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Reports that the schema allows but no run writes: times at the end
    /// of `u64`, samples and buckets out of order, zero-width buckets.
    #[test]
    fn odd_but_valid_files_read_and_render_without_panic() {
        let dir = std::env::temp_dir().join(format!("report-odd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let outage = serde_json::to_value(crate::report::html::tests::outage_run()).unwrap();
        type Edit = fn(&mut serde_json::Value);
        let edits: [(&str, Edit); 5] = [
            ("last bucket at u64::MAX", |r| {
                r["timeline"]["buckets"][199]["at_us"] = u64::MAX.into();
            }),
            ("buckets u64::MAX wide", |r| {
                r["timeline"]["bucket_us"] = u64::MAX.into();
            }),
            ("buckets 0 wide", |r| r["timeline"]["bucket_us"] = 0.into()),
            ("samples and buckets out of order", |r| {
                let samples = r["backends"].as_array_mut().unwrap();
                samples.reverse();
                samples[0]["at_us"] = u64::MAX.into();
                r["timeline"]["buckets"]
                    .as_array_mut()
                    .unwrap()
                    .swap(3, 150);
            }),
            (
                "a fault ending before it starts, another at u64::MAX",
                |r| {
                    r["faults"][0]["from_us"] = 9_000_000.into();
                    r["faults"][0]["to_us"] = 1.into();
                    r["faults"][1]["to_us"] = u64::MAX.into();
                },
            ),
        ];
        for (name, edit) in edits {
            let mut report = outage.clone();
            edit(&mut report);
            let path = dir.join("odd.json");
            std::fs::write(&path, serde_json::json!([report]).to_string()).unwrap();
            let reports = read(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
            let samples = &reports[0].backends;
            assert!(
                samples.windows(2).all(|w| w[0].at_us <= w[1].at_us),
                "{name}"
            );
            let html = crate::report::html::render(&reports);
            let options = roxmltree::ParsingOptions {
                allow_dtd: true,
                ..roxmltree::ParsingOptions::default()
            };
            roxmltree::Document::parse_with_options(&html, options)
                .unwrap_or_else(|e| panic!("{name}: not well-formed: {e}"));
        }
        std::fs::remove_dir_all(&dir).unwrap();
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
