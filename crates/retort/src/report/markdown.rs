//! The report as Markdown tables (`report.md`), and the cell formatting the HTML page shares.

use crate::report::{ModelRow, Report};
use crate::summary::{group_digits, short};

/// Column headers and cells of the quality table: every metric of the task, agreement with
/// the teacher and retention of the primary metric.
pub fn quality_table(r: &Report) -> (Vec<String>, Vec<Vec<String>>) {
    let names: Vec<&str> = r.models[0].scores.values.iter().map(|(n, _)| *n).collect();
    let mut head: Vec<String> = ["model", "role", "shape"].map(String::from).to_vec();
    head.extend(names.iter().map(|n| n.replace('_', " ")));
    head.push("agreement with teacher".into());
    head.push(format!("{} retention", r.metric.replace('_', " ")));
    let rows = r
        .models
        .iter()
        .map(|m| {
            let mut cells = vec![m.name.clone(), m.role.to_string(), m.shape.clone()];
            cells.extend(m.scores.values.iter().map(|(_, v)| format!("{v:.4}")));
            cells.push(format!("{:.1}%", 100.0 * m.agreement));
            cells.push(format!("{:.1}%", m.retention_pct));
            cells
        })
        .collect();
    (head, rows)
}

/// Entity F1 per type and model (a tagger's report); `None` for other tasks.
pub fn entity_table(r: &Report) -> Option<(Vec<String>, Vec<Vec<String>>)> {
    let first = r.models[0].scores.entities.as_ref()?;
    let types: Vec<&String> = first.per_type.keys().collect();
    let mut head = vec!["model".to_string()];
    head.extend(
        types
            .iter()
            .map(|t| format!("{t} F1 (support {})", first.per_type[*t].support)),
    );
    let rows = r
        .models
        .iter()
        .map(|m| {
            let mut cells = vec![m.name.clone()];
            let e = m.scores.entities.as_ref();
            cells.extend(types.iter().map(|t| {
                e.and_then(|e| e.per_type.get(*t))
                    .map_or("—".into(), |p| format!("{:.4}", p.f1))
            }));
            cells
        })
        .collect();
    Some((head, rows))
}

/// Column headers and cells of the cost table.
pub fn cost_table(r: &Report) -> (Vec<String>, Vec<Vec<String>>) {
    let head = vec![
        "model".to_string(),
        "parameters".to_string(),
        "w/o embeddings".to_string(),
        "size on disk".to_string(),
        "size vs teacher".to_string(),
        "latency p50 (batch 1)".to_string(),
        "latency p95".to_string(),
        format!("throughput (batch {})", r.batch_size),
        "speed-up (latency)".to_string(),
        "speed-up (throughput)".to_string(),
        "Pareto front".to_string(),
    ];
    let rows = r.models.iter().map(cost_cells).collect();
    (head, rows)
}

fn cost_cells(m: &ModelRow) -> Vec<String> {
    vec![
        m.name.clone(),
        format!("{} ({})", group_digits(m.parameters), short(m.parameters)),
        format!(
            "{} ({})",
            group_digits(m.parameters_without_embeddings),
            short(m.parameters_without_embeddings)
        ),
        format!("{:.1} MB", m.size_on_disk_bytes as f64 / 1e6),
        format!("{:.2}×", m.size_ratio),
        format!("{:.2} ms", m.latency_ms_p50),
        format!("{:.2} ms", m.latency_ms_p95),
        format!("{:.1} seq/s", m.throughput),
        format!("{:.2}×", m.latency_speedup),
        format!("{:.2}×", m.throughput_speedup),
        // No model is both faster at batch 1 and better: a choice worth making.
        if m.pareto { "yes" } else { "" }.to_string(),
    ]
}

/// Column headers and cells of the training-log table.
pub fn logs_table(r: &Report) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let head = vec![
        "run",
        "log",
        "steps",
        "loss terms",
        "final loss",
        "best dev score (step)",
    ];
    let rows = r
        .logs
        .iter()
        .map(|l| {
            let last = l.train.last();
            vec![
                l.name.clone(),
                l.path.display().to_string(),
                last.map_or("—".into(), |p| p.step.to_string()),
                l.term_names().join(", "),
                last.map_or("—".into(), |p| format!("{:.4}", p.loss)),
                l.best_eval().map_or("—".into(), |e| {
                    format!("{} {:.4} ({})", e.metric, e.dev, e.step)
                }),
            ]
        })
        .collect();
    (head, rows)
}

/// One Markdown table; `|` inside cells is escaped.
fn table<S: AsRef<str>>(head: &[S], rows: &[Vec<String>]) -> String {
    let cell = |s: &str| s.replace('|', "\\|");
    let mut out = format!(
        "| {} |\n|{}\n",
        head.iter()
            .map(|h| cell(h.as_ref()))
            .collect::<Vec<_>>()
            .join(" | "),
        "---|".repeat(head.len())
    );
    for r in rows {
        let cells: Vec<String> = r.iter().map(|c| cell(c)).collect();
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    out
}

/// The whole `report.md`.
pub fn render(r: &Report) -> String {
    let (qh, qr) = quality_table(r);
    let (ch, cr) = cost_table(r);
    let mut out = format!(
        "# Retort comparison report\n\n{}\n\n## Quality\n\n{}\n## Cost\n\n{}",
        setup_line(r),
        table(&qh, &qr),
        table(&ch, &cr)
    );
    if let Some((eh, er)) = entity_table(r) {
        out.push_str(&format!("\n## Entities by type\n\n{}", table(&eh, &er)));
    }
    if !r.logs.is_empty() {
        let (lh, lr) = logs_table(r);
        out.push_str(&format!("\n## Training logs\n\n{}", table(&lh, &lr)));
    }
    out
}

/// What the numbers were measured on.
pub fn setup_line(r: &Report) -> String {
    format!(
        "Task: {}. Data: `{}` ({} examples). Threads: {}. Throughput over the whole data at batch {} and batch-1 latency over the first {} examples, tokenisation included. Ratios are against the teacher; retention is of {}.",
        r.task.name(), r.data, r.examples, r.threads, r.batch_size, r.latency_samples, r.metric
    )
}
