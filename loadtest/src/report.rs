//! A run's result (a human table and one JSON line), and the Markdown tables
//! and SVG chart `loadtest/bench` puts into `BENCHMARKS.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde_json::{Map, Value};

use crate::cli::{Common, Report};
use crate::hubs::loadavg;

/// One run's figures, in the order they were set.
#[derive(Debug)]
pub(crate) struct Run {
    fields: Vec<(String, Value)>,
}

/// Rounds to three decimals, for readable JSON.
pub(crate) fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl Run {
    /// A run of `scenario`, stamped with the label, the time and the load average.
    pub(crate) fn new(scenario: &str, common: &Common) -> Run {
        let mut run = Run { fields: Vec::new() };
        run.set("scenario", scenario);
        run.set("label", common.label());
        if common.urls.len() > 1 || common.hub_nodes > 1 {
            run.set(
                "publish_via",
                format!("{:?}", common.publish_via).to_lowercase(),
            );
        }
        run.set(
            "unix_time",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        );
        run.set("loadavg_1m_start", loadavg().map_or(-1.0, |l| l[0]));
        run
    }

    /// Sets (or replaces) a figure.
    pub(crate) fn set(&mut self, key: &str, value: impl Into<Value>) {
        let value = value.into();
        let value = match value.as_f64() {
            Some(f) if value.is_f64() => Value::from(r3(f)),
            _ => value,
        };
        match self.fields.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.fields.push((key.to_string(), value)),
        }
    }

    /// Sets `{prefix}p50_ms`, p90, p99 and max from a µs histogram.
    pub(crate) fn latency(&mut self, prefix: &str, h: &Histogram<u64>) {
        if h.is_empty() {
            return;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        self.set(&format!("{prefix}p50_ms"), ms(h.value_at_quantile(0.50)));
        self.set(&format!("{prefix}p90_ms"), ms(h.value_at_quantile(0.90)));
        self.set(&format!("{prefix}p99_ms"), ms(h.value_at_quantile(0.99)));
        self.set(&format!("{prefix}max_ms"), ms(h.max()));
    }

    /// Prints the table and the JSON line; appends the line to `--json-out`.
    pub(crate) fn emit(mut self, common: &Common) -> Result<()> {
        self.set("loadavg_1m_end", loadavg().map_or(-1.0, |l| l[0]));
        let width = self.fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut table = String::new();
        for (k, v) in &self.fields {
            let _ = writeln!(table, "  {k:<width$}  {v}");
        }
        println!("{table}");
        let mut obj = Map::new();
        for (k, v) in &self.fields {
            obj.insert(k.clone(), v.clone());
        }
        let columns: Vec<Value> = self.fields.iter().map(|(k, _)| k.as_str().into()).collect();
        obj.insert("columns".into(), columns.into());
        let line = Value::Object(obj).to_string();
        println!("{line}");
        if let Some(path) = &common.json_out {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?;
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}

/// Columns the Markdown tables leave out.
const HIDDEN: &[&str] = &["scenario", "unix_time", "columns"];

/// Prints Markdown tables (one per scenario) and writes the chart.
pub(crate) fn markdown(args: &Report) -> Result<()> {
    let text = std::fs::read_to_string(&args.results)
        .with_context(|| format!("reading {}", args.results.display()))?;
    let runs: Vec<Map<String, Value>> = text
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    print!("{}", ratios(&runs));
    print!("{}", targets(&runs));
    print!("{}", tables(&runs));
    if let Some(path) = &args.chart {
        let points: Vec<(f64, [f64; 3])> = runs
            .iter()
            .filter(|r| r["scenario"] == "fanout")
            .filter(|r| {
                r["label"]
                    .as_str()
                    .is_some_and(|l| l.starts_with(&args.chart_label))
            })
            .filter_map(|r| {
                Some((
                    r.get("subs")?.as_f64()?,
                    [
                        r.get("p50_ms")?.as_f64()?,
                        r.get("p90_ms")?.as_f64()?,
                        r.get("p99_ms")?.as_f64()?,
                    ],
                ))
            })
            .collect();
        std::fs::write(path, chart(&points))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The group of a run: its label up to the first `/` (`memory`,
/// `redis-1node`, …).
fn group(run: &Map<String, Value>) -> &str {
    let label = run.get("label").and_then(Value::as_str).unwrap_or("?");
    label.split('/').next().unwrap_or(label)
}

/// A group's runs by scenario.
type ByScenario<'a> = BTreeMap<String, Vec<&'a Map<String, Value>>>;

/// One table per scenario, per group (in the order groups first appear);
/// the `memory` group's tables come under plain scenario headings, every
/// other group's under a heading of its own.
fn tables(runs: &[Map<String, Value>]) -> String {
    let mut groups: Vec<(&str, ByScenario<'_>)> = Vec::new();
    for run in runs {
        let g = group(run);
        let i = match groups.iter().position(|(name, _)| *name == g) {
            Some(i) => i,
            None => {
                groups.push((g, BTreeMap::new()));
                groups.len() - 1
            }
        };
        let s = run["scenario"].as_str().unwrap_or("?").to_string();
        groups[i].1.entry(s).or_default().push(run);
    }
    let mut out = String::new();
    for (g, by_scenario) in &groups {
        let level = if *g == "memory" {
            "###"
        } else {
            let _ = writeln!(out, "### `{g}`\n");
            "####"
        };
        for (scenario, runs) in by_scenario {
            let mut columns: Vec<String> = Vec::new();
            for run in runs {
                for c in run["columns"].as_array().into_iter().flatten() {
                    if let Some(c) = c.as_str()
                        && !HIDDEN.contains(&c)
                        && !columns.iter().any(|x| x == c)
                    {
                        columns.push(c.to_string());
                    }
                }
            }
            if *g == "memory" {
                let _ = writeln!(out, "{level} `{scenario}`\n");
            } else {
                let _ = writeln!(out, "{level} `{scenario}` ({g})\n");
            }
            let _ = writeln!(out, "| {} |", columns.join(" | "));
            let _ = writeln!(out, "|{}", "---|".repeat(columns.len()));
            for run in runs {
                let cells: Vec<String> = columns
                    .iter()
                    .map(|c| match run.get(c) {
                        Some(Value::String(s)) => s.clone(),
                        Some(v) => v.to_string(),
                        None => String::new(),
                    })
                    .collect();
                let _ = writeln!(out, "| {} |", cells.join(" | "));
            }
            out.push('\n');
        }
    }
    out
}

/// The figures compared with the reference server: (scenario, figure,
/// what it is, the target ratio Hubbub / reference).
const COMPARED: &[(&str, &str, &str, &str)] = &[
    (
        "fanout",
        "hub_cpu_us_per_delivery",
        "hub CPU per delivery (µs)",
        "≤ 1.1",
    ),
    ("fanout", "p99_ms", "p99 publish→receive (ms)", "≤ 1.1"),
    (
        "storm",
        "setup_p50_ms",
        "handshake p50, connect + JWT + subscribe (ms)",
        "≤ 2",
    ),
    (
        "storm",
        "hub_cpu_us_per_conn",
        "hub CPU per new connection (µs)",
        "—",
    ),
    (
        "idle",
        "kib_per_conn",
        "memory per idle subscribed connection (KiB)",
        "—",
    ),
    ("publish", "pubs_per_s", "REST publishes/s", "—"),
];

/// The parameters that make two runs of a scenario the same experiment.
const SAME: &[&str] = &[
    "subs",
    "rate",
    "clients",
    "concurrency",
    "count",
    "batch",
    "publishers",
];

/// The table `BENCHMARKS.md` leads with: every run labelled `reference/…`
/// beside the latest `memory/…` run of the same label suffix, scenario and
/// parameters, as a ratio Hubbub / reference. Empty when no reference ran.
fn ratios(runs: &[Map<String, Value>]) -> String {
    fn label(r: &Map<String, Value>) -> &str {
        r.get("label").and_then(Value::as_str).unwrap_or("")
    }
    let mut rows = Vec::new();
    for reference in runs.iter().filter(|r| label(r).starts_with("reference/")) {
        let suffix = &label(reference)["reference/".len()..];
        let Some(hubbub) = runs.iter().rev().find(|r| {
            label(r).strip_prefix("memory/") == Some(suffix)
                && r.get("scenario") == reference.get("scenario")
                && SAME.iter().all(|k| r.get(*k) == reference.get(*k))
        }) else {
            continue;
        };
        let scenario = reference["scenario"].as_str().unwrap_or("?");
        let params: Vec<String> = SAME
            .iter()
            .filter_map(|k| Some(format!("{k} {}", reference.get(*k)?)))
            .collect();
        for (s, key, what, target) in COMPARED.iter().filter(|c| c.0 == scenario) {
            let (Some(r), Some(h)) = (
                reference.get(*key).and_then(Value::as_f64),
                hubbub.get(*key).and_then(Value::as_f64),
            ) else {
                continue;
            };
            let (ratio, verdict) = if r > 0.0 {
                (format!("{:.2}", h / r), verdict(h / r, target))
            } else {
                ("—".into(), "—".into())
            };
            rows.push(format!(
                "| {s} ({}) | {what} | {r} | {h} | **{ratio}** | {target} | {verdict} |",
                params.join(", ")
            ));
        }
    }
    if rows.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "### Hubbub against the reference server (same run)\n\n\
         | run | figure | reference | Hubbub | ratio | target | verdict |\n|---|---|---|---|---|---|---|\n",
    );
    for row in rows {
        let _ = writeln!(out, "{row}");
    }
    out.push('\n');
    out
}

/// Whether `value` meets `target` ("≤ N" or "≥ N"; anything else has no
/// verdict), and by how much it misses: "met", or "missed by 41%".
fn verdict(value: f64, target: &str) -> String {
    let (at_most, bound) = if let Some(n) = target.strip_prefix("≤ ") {
        (true, n)
    } else if let Some(n) = target.strip_prefix("≥ ") {
        (false, n)
    } else {
        return "—".into();
    };
    let Ok(bound) = bound.trim().parse::<f64>() else {
        return "—".into();
    };
    let met = if at_most {
        value <= bound
    } else {
        value >= bound
    };
    if met {
        "met".into()
    } else if bound == 0.0 {
        "missed".into()
    } else {
        format!("missed by {:.0}%", (value / bound - 1.0).abs() * 100.0)
    }
}

/// How a target's figure is computed from the runs (`None`: not run).
type Figure = fn(&[Map<String, Value>]) -> Option<f64>;

/// The latest run with `label` and `scenario` whose parameters include `params`.
fn find<'a>(
    runs: &'a [Map<String, Value>],
    label: &str,
    scenario: &str,
    params: &[(&str, f64)],
) -> Option<&'a Map<String, Value>> {
    runs.iter().rev().find(|r| {
        r.get("label").and_then(Value::as_str) == Some(label)
            && r.get("scenario").and_then(Value::as_str) == Some(scenario)
            && params
                .iter()
                .all(|(k, v)| r.get(*k).and_then(Value::as_f64) == Some(*v))
    })
}

fn figure(
    runs: &[Map<String, Value>],
    label: &str,
    scenario: &str,
    params: &[(&str, f64)],
    key: &str,
) -> Option<f64> {
    find(runs, label, scenario, params)?.get(key)?.as_f64()
}

/// Issue 14's targets that are not ratios to the reference: (the figure,
/// the target, how to compute it).
const TARGETS: &[(&str, &str, Figure)] = &[
    (
        "hub CPU per new connection, µs (storm, 10,000 clients, concurrency 1024)",
        "≤ 40",
        |runs| {
            figure(
                runs,
                "memory/1core/pair",
                "storm",
                &[("clients", 10000.0), ("concurrency", 1024.0)],
                "hub_cpu_us_per_conn",
            )
        },
    ),
    (
        "memory per idle subscribed connection, KiB (15,000 clients)",
        "≤ 4.0",
        |runs| {
            figure(
                runs,
                "memory/1core",
                "idle",
                &[("clients", 15000.0)],
                "kib_per_conn",
            )
        },
    ),
    (
        "single REST publishes per second, one node on Redis (concurrency 128)",
        "≥ 40000",
        |runs| {
            figure(
                runs,
                "redis-1node/single",
                "publish",
                &[("batch", 1.0)],
                "pubs_per_s",
            )
        },
    ),
    (
        "fan-out CPU per delivery, Redis ÷ memory (2,000 subscribers × 10/s)",
        "≤ 1.1",
        |runs| {
            let at = [("subs", 2000.0), ("rate", 10.0)];
            let redis = figure(
                runs,
                "redis-1node/fanout",
                "fanout",
                &at,
                "hub_cpu_us_per_delivery",
            )?;
            let memory = figure(
                runs,
                "memory/1core/sweep",
                "fanout",
                &at,
                "hub_cpu_us_per_delivery",
            )?;
            (memory > 0.0).then(|| redis / memory)
        },
    ),
    (
        "p99 of the other node's subscribers minus p99 of all subscribers, ms (2 nodes on Redis, 2,000 × 10/s)",
        "≤ 2",
        |runs| {
            let r = find(
                runs,
                "redis-2node/fanout",
                "fanout",
                &[("subs", 2000.0), ("rate", 10.0)],
            )?;
            Some(r.get("other_node_p99_ms")?.as_f64()? - r.get("p99_ms")?.as_f64()?)
        },
    ),
];

/// The table of issue 14's targets that are not ratios to the reference,
/// each with this run's figure and whether it is met. Rows whose runs are
/// missing (a `--no-redis` run) are left out; empty when none ran.
fn targets(runs: &[Map<String, Value>]) -> String {
    let rows: Vec<String> = TARGETS
        .iter()
        .filter_map(|(what, target, get)| {
            let v = get(runs)?;
            let shown = (v * 1000.0).round() / 1000.0;
            Some(format!(
                "| {what} | {shown} | {target} | {} |",
                verdict(v, target)
            ))
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "### Targets that are not ratios (same run)\n\n\
         | figure | Hubbub | target | verdict |\n|---|---|---|---|\n",
    );
    for row in rows {
        let _ = writeln!(out, "{row}");
    }
    out.push('\n');
    out
}

/// A line chart of p50/p90/p99 (ms) against subscriber count.
fn chart(points: &[(f64, [f64; 3])]) -> String {
    let mut points = points.to_vec();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (w, h, left, right, top, bottom) = (720.0, 420.0, 70.0, 130.0, 40.0, 60.0);
    let max_x = points.iter().map(|p| p.0).fold(1.0, f64::max);
    let max_y = points.iter().map(|p| p.1[2]).fold(1.0, f64::max) * 1.1;
    let x = |v: f64| left + v / max_x * (w - left - right);
    let y = |v: f64| h - bottom - v / max_y * (h - top - bottom);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">Fan-out publish-to-receive latency vs subscribers (hub on one core)</text>"#,
        w / 2.0
    );
    for i in 0..=5 {
        let v = max_y * f64::from(i) / 5.0;
        let _ = writeln!(
            s,
            r##"<line x1="{left}" x2="{}" y1="{y}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{v:.1}</text>"##,
            w - right,
            left - 6.0,
            y(v) + 4.0,
            y = y(v)
        );
    }
    for (sx, _) in &points {
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{sx}</text>"#,
            x(*sx),
            h - bottom + 18.0
        );
    }
    let _ = writeln!(
        s,
        r##"<line x1="{left}" x2="{left}" y1="{top}" y2="{}" stroke="#000"/><line x1="{left}" x2="{}" y1="{b}" y2="{b}" stroke="#000"/>"##,
        h - bottom,
        w - right,
        b = h - bottom
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">subscribers of one topic (10 publications/s, 100 B)</text>"#,
        (left + w - right) / 2.0,
        h - 15.0
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate(18,{}) rotate(-90)" text-anchor="middle">latency, ms</text>"#,
        h / 2.0
    );
    let series = [("p50", "#1f77b4"), ("p90", "#ff7f0e"), ("p99", "#d62728")];
    for (k, (name, color)) in series.iter().enumerate() {
        let path: Vec<String> = points
            .iter()
            .map(|(sx, ys)| format!("{:.1},{:.1}", x(*sx), y(ys[k])))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        for p in &path {
            let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(s, r#"<circle cx="{px}" cy="{py}" r="3" fill="{color}"/>"#);
        }
        let ly = top + 20.0 + 20.0 * k as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{}" x2="{}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="2"/><text x="{}" y="{}">{name}</text>"#,
            w - right + 15.0,
            w - right + 40.0,
            w - right + 46.0,
            ly + 4.0
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(line: &str) -> Map<String, Value> {
        serde_json::from_str(line).unwrap()
    }

    #[test]
    fn redis_runs_get_tables_of_their_own() {
        let runs = [
            run(
                r#"{"scenario":"publish","label":"memory/1core","pubs_per_s":1,"columns":["scenario","label","pubs_per_s"]}"#,
            ),
            run(
                r#"{"scenario":"publish","label":"redis-2node/all","pubs_per_s":3,"columns":["scenario","label","pubs_per_s"]}"#,
            ),
            run(
                r#"{"scenario":"publish","label":"redis-1node/1core","pubs_per_s":2,"columns":["scenario","label","pubs_per_s"]}"#,
            ),
        ];
        let md = tables(&runs);
        let mem = md.find("### `publish`\n").unwrap();
        let one = md.find("### `redis-2node`").unwrap();
        let two = md.find("### `redis-1node`").unwrap();
        assert!(mem < one && one < two, "{md}");
        assert!(md.contains("#### `publish` (redis-1node)\n"), "{md}");
        assert_eq!(md.matches("| memory/1core |").count(), 1, "{md}");
    }

    #[test]
    fn a_verdict_says_met_or_by_how_much_it_misses() {
        assert_eq!(verdict(1.05, "≤ 1.1"), "met");
        assert_eq!(verdict(1.41, "≤ 1.1"), "missed by 28%");
        assert_eq!(verdict(10986.0, "≥ 40000"), "missed by 73%");
        assert_eq!(verdict(41000.0, "≥ 40000"), "met");
        assert_eq!(verdict(3.0, "—"), "—");
    }

    #[test]
    fn the_targets_table_reads_the_runs_it_names() {
        let runs = [
            run(
                r#"{"scenario":"idle","label":"memory/1core","clients":15000,"kib_per_conn":5.311}"#,
            ),
            run(r#"{"scenario":"idle","label":"memory/1core","clients":1000,"kib_per_conn":1.0}"#),
            run(
                r#"{"scenario":"fanout","label":"redis-1node/fanout","subs":2000,"rate":10.0,"hub_cpu_us_per_delivery":11.0}"#,
            ),
            run(
                r#"{"scenario":"fanout","label":"memory/1core/sweep","subs":2000,"rate":10.0,"hub_cpu_us_per_delivery":10.0}"#,
            ),
        ];
        let md = targets(&runs);
        assert!(
            md.contains("| memory per idle subscribed connection, KiB (15,000 clients) | 5.311 | ≤ 4.0 | missed by 33% |"),
            "{md}"
        );
        assert!(md.contains("| 1.1 | ≤ 1.1 | met |"), "{md}");
        assert!(
            !md.contains("publishes per second"),
            "no Redis publish run: {md}"
        );
        assert_eq!(targets(&[]), "");
    }
}
