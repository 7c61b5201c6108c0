//! `report`: reads the JSON result lines of many runs and prints a Markdown table comparing a
//! candidate server with a baseline (medians over repeated runs; ratio > 1 means the candidate is better).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::stats::fmt_num;

#[derive(clap::Args)]
pub struct Args {
    /// Files with JSON result lines (other lines are ignored); stdin if none.
    files: Vec<PathBuf>,
    #[arg(long, default_value = "reference")]
    baseline: String,
    #[arg(long, default_value = "berth")]
    candidate: String,
}

#[derive(Default)]
struct Row {
    better: String,
    unit: String,
    values: BTreeMap<String, Vec<f64>>,
}

pub fn run(a: &Args) -> Result<()> {
    let mut text = String::new();
    if a.files.is_empty() {
        std::io::stdin().read_to_string(&mut text)?;
    }
    for f in &a.files {
        text.push_str(
            &std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?,
        );
        text.push('\n');
    }
    print!("{}", render(&text, &a.baseline, &a.candidate));
    Ok(())
}

/// Median of finite values; NaN if none.
fn median(v: &[f64]) -> f64 {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// The last column: `—` when a side is missing or the metric has no direction; for counts that are
/// zero on one side (errors), `=` when both are 0 and `∞` / `0.00×` when only one is.
fn ratio_cell(better: &str, b: f64, c: f64, ratio: f64) -> String {
    if !b.is_finite() || !c.is_finite() || better == "none" {
        return "—".into();
    }
    if b == 0.0 && c == 0.0 {
        return "=".into();
    }
    if ratio.is_finite() {
        format!("{ratio:.2}×")
    } else {
        "∞".into()
    }
}

pub fn render(text: &str, base: &str, cand: &str) -> String {
    // (scenario, metric) rows in first-seen order.
    let mut order: Vec<(String, String)> = Vec::new();
    let mut rows: BTreeMap<(String, String), Row> = BTreeMap::new();
    let mut runs: BTreeMap<String, usize> = BTreeMap::new();
    // Scenarios that only the candidate runs (`params.berth_only`), labelled as such.
    let mut only_cand: std::collections::BTreeSet<String> = Default::default();
    for line in text.lines().filter(|l| l.trim_start().starts_with('{')) {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let scenario = v["scenario"].as_str().unwrap_or("?").to_string();
        let server = v["server"].as_str().unwrap_or("?").to_string();
        *runs.entry(server.clone()).or_default() += 1;
        if v["params"]["berth_only"].as_bool() == Some(true) {
            only_cand.insert(scenario.clone());
        }
        for m in v["metrics"].as_array().into_iter().flatten() {
            let name = m["name"].as_str().unwrap_or("?").to_string();
            let key = (scenario.clone(), name);
            let row = rows.entry(key.clone()).or_insert_with(|| {
                order.push(key.clone());
                Row {
                    better: m["better"].as_str().unwrap_or("none").into(),
                    unit: m["unit"].as_str().unwrap_or("").into(),
                    ..Row::default()
                }
            });
            row.values
                .entry(server.clone())
                .or_default()
                .push(m["value"].as_f64().unwrap_or(f64::NAN));
        }
    }
    let mut out = format!(
        "| scenario | metric | {base} | {cand} | {cand} vs {base} |\n|---|---|---:|---:|---:|\n"
    );
    let mut last = String::new();
    for key in &order {
        let row = &rows[key];
        let get = |s: &str| row.values.get(s).map(|v| median(v)).unwrap_or(f64::NAN);
        let (b, c) = (get(base), get(cand));
        let ratio = match row.better.as_str() {
            "higher" => c / b,
            "lower" => b / c,
            _ => f64::NAN,
        };
        let ratio = ratio_cell(&row.better, b, c, ratio);
        let unit = if row.unit == "count" || row.unit.is_empty() {
            String::new()
        } else {
            format!(" ({})", row.unit)
        };
        let arrow = match row.better.as_str() {
            "higher" => " ↑",
            "lower" => " ↓",
            _ => "",
        };
        let scen = if key.0 == last {
            String::new()
        } else if only_cand.contains(&key.0) {
            format!("{} ({cand} only)", key.0)
        } else {
            key.0.clone()
        };
        last = key.0.clone();
        let cell = |x: f64| {
            if x.is_finite() {
                fmt_num(x)
            } else {
                "—".into()
            }
        };
        out.push_str(&format!(
            "| {scen} | {}{unit}{arrow} | {} | {} | {ratio} |\n",
            key.1,
            cell(b),
            cell(c)
        ));
    }
    let counts: Vec<String> = runs
        .iter()
        .map(|(s, n)| format!("{s}: {n} result lines"))
        .collect();
    out.push_str(&format!(
        "\nValues are medians over repeated runs ({}). ↑ higher is better, ↓ lower is better; \
         the last column is {cand}/{base} for ↑ and {base}/{cand} for ↓, so > 1 means {cand} is better.\n",
        counts.join(", ")
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_ratios() {
        let text = r#"
{"scenario":"s","server":"reference","metrics":[{"name":"mb","value":100,"unit":"MB/s","better":"higher"},{"name":"p50","value":10,"unit":"ms","better":"lower"}]}
{"scenario":"s","server":"berth","metrics":[{"name":"mb","value":200,"unit":"MB/s","better":"higher"},{"name":"p50","value":5,"unit":"ms","better":"lower"}]}
{"scenario":"s","server":"berth","metrics":[{"name":"mb","value":300,"unit":"MB/s","better":"higher"},{"name":"p50","value":5,"unit":"ms","better":"lower"}]}
noise
"#;
        let t = render(text, "reference", "berth");
        assert!(t.contains("| s | mb (MB/s) ↑ | 100 | 250 | 2.50× |"), "{t}");
        assert!(t.contains("| p50 (ms) ↓ | 10 | 5 | 2.00× |"), "{t}");
        assert_eq!(ratio_cell("lower", 4.0, 0.0, 4.0 / 0.0), "∞");
        let only = r#"{"scenario":"o","server":"berth","params":{"berth_only":true},"metrics":[{"name":"r","value":5,"unit":"req/s","better":"higher"}]}"#;
        let t = render(only, "reference", "berth");
        assert!(
            t.contains("| o (berth only) | r (req/s) ↑ | — | 5 | — |"),
            "{t}"
        );
        assert_eq!(ratio_cell("lower", 0.0, 3.0, 0.0), "0.00×");
        assert_eq!(ratio_cell("lower", 0.0, 0.0, f64::NAN), "=");
        assert_eq!(ratio_cell("none", 1.0, 2.0, f64::NAN), "—");
    }

    #[test]
    fn median_even_odd() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[1.0, 2.0, 3.0, 4.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
