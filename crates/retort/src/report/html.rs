//! `report.html`: one self-contained page (inline CSS and SVG; no scripts, no network) with
//! the report's tables and charts.

use crate::report::markdown::{cost_table, entity_table, logs_table, quality_table, setup_line};
use crate::report::svg::{self, escape, Point, Series};
use crate::report::Report;

const STYLE: &str = r#"
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto; max-width: 1360px; padding: 0 1rem; color: #222; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; }
p.setup { color: #555; }
table { border-collapse: collapse; font-size: 0.9rem; margin: 0.5rem 0; }
th, td { padding: 0.35rem 0.7rem; border-bottom: 1px solid #e5e5e5; text-align: right; }
th { background: #f5f7fa; } td:first-child, th:first-child { text-align: left; }
tr.teacher td { font-weight: 600; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 1rem; }
.chart { width: 100%; height: auto; background: #fff; border: 1px solid #e5e5e5; border-radius: 6px; }
.chart-title { font-size: 15px; font-weight: 600; fill: #222; }
.tick, .bar-value, .legend-text, .point-label, .bar-label { font-size: 12px; fill: #333; }
.axis-title { font-size: 13px; fill: #333; }
.axis { stroke: #444; stroke-width: 1; } .grid { stroke: #e6e6e6; stroke-width: 1; }
.legend-box { fill: #fff; fill-opacity: 0.85; stroke: #ccc; }
.point { stroke: #fff; stroke-width: 1.5; }
"#;

/// The whole page.
pub fn render(r: &Report) -> String {
    let (qh, qr) = quality_table(r);
    let (ch, cr) = cost_table(r);
    let mut body = format!(
        "<h1>Retort: teacher vs students</h1>\n<p class=\"setup\">{}</p>\n<h2>Quality</h2>\n{}\n<h2>Cost</h2>\n{}\n<h2>Trade-off</h2>\n<div class=\"charts\">{}{}</div>\n",
        escape(&setup_line(r)).replace('`', ""),
        table(&qh, &qr, true),
        table(&ch, &cr, true),
        score_vs_latency(r),
        size_bars(r)
    );
    if let Some((eh, er)) = entity_table(r) {
        body.push_str(&format!(
            "<h2>Entities by type</h2>\n{}",
            table(&eh, &er, true)
        ));
    }
    body.push_str("<h2>Training curves</h2>\n");
    if r.logs.is_empty() {
        body.push_str(
            "<p>No training logs were given (<code>--logs run/metrics.jsonl</code>).</p>\n",
        );
    } else {
        let (lh, lr) = logs_table(r);
        body.push_str(&table(&lh, &lr, false));
        body.push_str("<div class=\"charts\">");
        for (i, log) in r.logs.iter().enumerate() {
            body.push_str(&loss_curves(log, i));
            if !log.schedule_names().is_empty() {
                body.push_str(&schedule_curves(log, i));
            }
        }
        body.push_str(&dev_score_curves(r));
        body.push_str("</div>\n");
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>Retort comparison report</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n"
    )
}

/// An HTML table; with `teacher_first`, the first row (the teacher's) is emphasised.
fn table<S: AsRef<str>>(head: &[S], rows: &[Vec<String>], teacher_first: bool) -> String {
    let mut out = String::from("<table>\n<thead><tr>");
    for h in head {
        out.push_str(&format!("<th>{}</th>", escape(h.as_ref())));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for (i, row) in rows.iter().enumerate() {
        out.push_str(if teacher_first && i == 0 {
            "<tr class=\"teacher\">"
        } else {
            "<tr>"
        });
        for c in row {
            out.push_str(&format!("<td>{}</td>", escape(c)));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

fn score_vs_latency(r: &Report) -> String {
    let points: Vec<Point> = r
        .models
        .iter()
        .map(|m| Point {
            label: format!("{} ({})", m.name, m.role),
            x: m.latency_ms_p50,
            y: m.score,
            marked: m.role == "teacher",
            front: m.pareto,
        })
        .collect();
    svg::scatter(
        "chart-score-latency",
        &format!(
            "{} vs batch-1 latency (teacher: diamond; dashed: the Pareto front)",
            title(r.metric)
        ),
        &points,
        "latency p50, batch 1 (ms)",
        &r.metric.replace('_', " "),
    )
}

fn size_bars(r: &Report) -> String {
    let bars: Vec<(String, f64)> = r
        .models
        .iter()
        .map(|m| (m.name.clone(), m.size_on_disk_bytes as f64 / 1e6))
        .collect();
    svg::bars(
        "chart-size",
        "Size on disk",
        &bars,
        "megabytes (model directory)",
        "MB",
    )
}

/// The total loss and each loss term of one run over its steps.
fn loss_curves(log: &crate::report::TrainingLog, i: usize) -> String {
    let terms = log.term_names();
    // With one term the total is that term: one line, not two on top of each other.
    let total = match terms.as_slice() {
        [only] => format!("loss ({only})"),
        _ => "loss (weighted total)".into(),
    };
    let mut series = vec![Series {
        name: total,
        points: log.train.iter().map(|p| (p.step as f64, p.loss)).collect(),
    }];
    for term in terms.into_iter().filter(|_| series_per_term(log)) {
        series.push(Series {
            points: log
                .train
                .iter()
                .filter_map(|p| p.terms.get(&term).map(|v| (p.step as f64, *v)))
                .collect(),
            name: term,
        });
    }
    svg::lines(
        &format!("chart-loss-{i}"),
        &format!("Training loss: {}", log.name),
        &series,
        "step",
        "loss",
    )
}

/// The scheduled weights and temperature of one run over its steps.
fn schedule_curves(log: &crate::report::TrainingLog, i: usize) -> String {
    let series: Vec<Series> = log
        .schedule_names()
        .into_iter()
        .map(|name| Series {
            points: log
                .train
                .iter()
                .filter_map(|p| p.schedule.get(&name).map(|v| (p.step as f64, *v)))
                .collect(),
            name,
        })
        .collect();
    svg::lines(
        &format!("chart-schedule-{i}"),
        &format!("Scheduled weights and temperature: {}", log.name),
        &series,
        "step",
        "value",
    )
}

fn series_per_term(log: &crate::report::TrainingLog) -> bool {
    log.term_names().len() > 1
}

/// "entity_f1" → "Entity f1": a metric's name as a title.
fn title(metric: &str) -> String {
    let words = metric.replace('_', " ");
    let mut chars = words.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The dev value of each run's primary metric over steps, one line per run.
fn dev_score_curves(r: &Report) -> String {
    let series: Vec<Series> = r
        .logs
        .iter()
        .map(|l| Series {
            name: l.name.clone(),
            // A log of another metric (a general stage's loss) does not share this axis.
            points: l
                .eval
                .iter()
                .filter(|e| e.metric == r.metric)
                .map(|e| (e.step as f64, e.dev))
                .collect(),
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    svg::lines(
        "chart-dev-score",
        &format!("Dev {} during training", r.metric.replace('_', " ")),
        &series,
        "step",
        &format!("dev {}", r.metric.replace('_', " ")),
    )
}
