//! The report as Markdown tables (`report.md`), and the cell formatting the HTML page shares.

use crate::report::{ModelRow, Report};
use crate::summary::{group_digits, short};

/// Column headers and cells of the quality table.
pub fn quality_table(r: &Report) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let head = vec![
        "model",
        "role",
        "layers × hidden",
        "accuracy",
        "macro-F1",
        "agreement with teacher",
        "accuracy retention",
    ];
    let rows = r
        .models
        .iter()
        .map(|m| {
            vec![
                m.name.clone(),
                m.role.to_string(),
                format!("{} × {}", m.layers, m.hidden_size),
                format!("{:.4}", m.accuracy),
                format!("{:.4}", m.macro_f1),
                format!("{:.1}%", 100.0 * m.agreement),
                format!("{:.1}%", m.accuracy_retention_pct),
            ]
        })
        .collect();
    (head, rows)
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
        "best dev accuracy (step)",
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
                    format!("{:.4} ({})", e.dev_accuracy, e.step)
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
    if !r.logs.is_empty() {
        let (lh, lr) = logs_table(r);
        out.push_str(&format!("\n## Training logs\n\n{}", table(&lh, &lr)));
    }
    out
}

/// What the numbers were measured on.
pub fn setup_line(r: &Report) -> String {
    format!(
        "Data: `{}` ({} examples). Threads: {}. Throughput over the whole data at batch {} and batch-1 latency over the first {} sentences, tokenisation included. Ratios are against the teacher.",
        r.data, r.examples, r.threads, r.batch_size, r.latency_samples
    )
}
