//! A human-readable (and JSON) summary of a loaded model: what `retort inspect` prints.

use serde::Serialize;

use crate::error::Result;
use crate::infer::Classifier;
use crate::model::checkpoint::size_on_disk;

/// Architecture, sizes and labels of a model.
#[derive(Debug, Clone, Serialize)]
pub struct ModelSummary {
    pub model: String,
    pub model_type: &'static str,
    pub class: String,
    /// A BiLSTM's or CNN's layers in words; `None` for a transformer (whose shape the
    /// layer, width and head fields give).
    pub shape: Option<String>,
    /// Its layers in a table cell (see `ModelConfig::short_shape`).
    pub short_shape: String,
    pub layers: usize,
    pub hidden_size: usize,
    pub heads: usize,
    pub head_size: usize,
    /// Heads left in each layer after pruning (all `heads` where none were pruned).
    pub heads_per_layer: Vec<usize>,
    pub intermediate_size: usize,
    pub max_positions: usize,
    pub vocab_size: usize,
    pub tokenizer_vocab_size: usize,
    pub labels: Vec<String>,
    /// The checkpoint had no classification head; a fresh one was initialised.
    pub fresh_head: bool,
    /// The encoder's linear maps run in int8 (an int8 export).
    pub int8: bool,
    pub parameters: usize,
    pub parameters_without_embeddings: usize,
    /// Bytes of the files in the model directory.
    pub size_on_disk_bytes: u64,
}

impl ModelSummary {
    /// Summarises a loaded classifier.
    pub fn of(c: &Classifier) -> Result<Self> {
        let cfg = c.model.config();
        let (parameters, parameters_without_embeddings) = c.model.parameter_counts();
        Ok(Self {
            model: c.dir.display().to_string(),
            model_type: cfg.architecture.model_type(),
            class: cfg.architecture.class(cfg.head),
            shape: cfg.compact.is_some().then(|| cfg.describe()),
            short_shape: cfg.short_shape(),
            layers: cfg.num_layers,
            hidden_size: cfg.hidden_size,
            heads: cfg.num_heads,
            head_size: cfg.head_dim(),
            heads_per_layer: (0..cfg.num_layers).map(|l| cfg.heads_in_layer(l)).collect(),
            intermediate_size: cfg.intermediate_size,
            max_positions: cfg.max_position_embeddings,
            vocab_size: cfg.vocab_size,
            tokenizer_vocab_size: c.tokenizer.vocab_size(),
            labels: cfg.labels.clone(),
            fresh_head: c.report.fresh_head,
            int8: c.model.is_int8(),
            parameters,
            parameters_without_embeddings,
            size_on_disk_bytes: size_on_disk(&c.dir)?,
        })
    }

    /// Summarises a translator: its decoder's depth and width stand for its layers (the
    /// encoder's are in `shape`), its vocabulary for its labels.
    pub fn of_translator(t: &crate::translate::Translator) -> Result<Self> {
        let c = &t.model.config;
        let cfg = crate::model::Model::config(&t.model);
        let (parameters, parameters_without_embeddings) =
            crate::model::Model::parameter_counts(&t.model);
        Ok(Self {
            model: t.dir.display().to_string(),
            model_type: cfg.architecture.model_type(),
            class: cfg.architecture.class(cfg.head),
            shape: Some(format!(
                "encoder {} × {}, decoder {} × {}, {} heads, feed-forward {}",
                c.encoder_layers, c.d_model, c.decoder_layers, c.d_model, c.heads, c.ffn_dim
            )),
            short_shape: format!("{}+{} × {}", c.encoder_layers, c.decoder_layers, c.d_model),
            layers: c.decoder_layers,
            hidden_size: c.d_model,
            heads: c.heads,
            head_size: c.head_dim(),
            heads_per_layer: vec![c.heads; c.decoder_layers],
            intermediate_size: c.ffn_dim,
            max_positions: c.max_positions,
            vocab_size: c.vocab_size,
            tokenizer_vocab_size: t.tokenizer.vocab_size(),
            labels: Vec::new(),
            fresh_head: false,
            int8: false,
            parameters,
            parameters_without_embeddings,
            size_on_disk_bytes: size_on_disk(&t.dir)?,
        })
    }

    /// `"; kept after pruning: 8, 8, 8"` (heads per layer) when some heads are pruned.
    fn pruned_heads_note(&self) -> String {
        if self.heads_per_layer.iter().all(|&h| h == self.heads) {
            return String::new();
        }
        let kept: Vec<String> = self.heads_per_layer.iter().map(|h| h.to_string()).collect();
        format!("; kept after pruning: {} (per layer)", kept.join(", "))
    }

    /// The summary as aligned `name  value` lines.
    pub fn to_text(&self) -> String {
        let fresh = if self.fresh_head {
            " (head freshly initialised)"
        } else {
            ""
        };
        let shape = match &self.shape {
            Some(shape) => vec![format!("layers           {shape}")],
            None => vec![
                format!("layers           {}", self.layers),
                format!("hidden size      {}", self.hidden_size),
                format!(
                    "attention heads  {} (head size {}){}",
                    self.heads,
                    self.head_size,
                    self.pruned_heads_note()
                ),
                format!("feed-forward     {}", self.intermediate_size),
            ],
        };
        let lines = [
            format!("model            {}", self.model),
            format!(
                "architecture     {} ({}){}",
                self.model_type,
                self.class,
                if self.int8 {
                    ", int8 linear layers"
                } else {
                    ""
                }
            ),
        ];
        let rest = [
            format!("max positions    {}", self.max_positions),
            format!(
                "vocabulary       {} (tokenizer: {})",
                self.vocab_size, self.tokenizer_vocab_size
            ),
            match self.labels.is_empty() {
                // A translator's outputs are its vocabulary's tokens.
                true => "labels           none (outputs: the vocabulary's tokens)".to_string(),
                false => format!("labels           {}{fresh}", self.labels.join(", ")),
            },
            format!(
                "parameters       {} ({})",
                group_digits(self.parameters),
                short(self.parameters)
            ),
            format!(
                "  w/o embeddings {} ({})",
                group_digits(self.parameters_without_embeddings),
                short(self.parameters_without_embeddings)
            ),
            format!(
                "size on disk     {:.1} MB",
                self.size_on_disk_bytes as f64 / 1e6
            ),
        ];
        lines
            .into_iter()
            .chain(shape)
            .chain(rest)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// `22713216` → `22,713,216`.
pub fn group_digits(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// `22713216` → `22.7M`, `30434` → `30.4K`.
pub fn short(n: usize) -> String {
    match n {
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1}K", n as f64 / 1e3),
        n => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_counts() {
        assert_eq!(group_digits(22713216), "22,713,216");
        assert_eq!(group_digits(999), "999");
        assert_eq!(short(22713216), "22.7M");
        assert_eq!(short(30434), "30.4K");
    }
}
