//! Layer mapping: which teacher layer each student layer learns from in intermediate-layer
//! distillation (hidden-state and attention losses).
//!
//! Layers are 0-based transformer layers. The encoder's `hidden_states` has the embedding
//! output first, so layer `l`'s output is `hidden_states[l + 1]` and its attention map is
//! `attentions[l]`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How student layers are paired with teacher layers.
///
/// In a TOML/JSON config it is a string: `"uniform"`, `"last"`, or a comma-separated list of
/// teacher layers such as `"1,3,5"` (see [`FromStr`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum LayerMap {
    /// TinyBERT's uniform strategy (Jiao et al. 2020): with `k = teacher / student` (floor),
    /// student layer `i` learns from teacher layer `i·k + k − 1`, i.e. the last layer of each
    /// block of `k`. When the depths do not divide, the floor leaves the teacher's top
    /// `teacher mod student` layers unused rather than spacing blocks unevenly.
    #[default]
    Uniform,
    /// The student's layers learn from the teacher's top layers, in order: student layer `i`
    /// ↔ teacher layer `teacher − student + i` (the top layers carry the most task-specific
    /// information).
    LastK,
    /// `v[i]` is the teacher layer for student layer `i`. Repeats and any order are allowed
    /// (e.g. several student layers may learn from one teacher layer), so this variant also
    /// works for a student deeper than its teacher.
    Explicit(Vec<usize>),
}

impl LayerMap {
    /// The `(student_layer, teacher_layer)` pairs, one per student layer, 0-based.
    ///
    /// Errors ([`Error::Invalid`]) when the student has no layers, when a `Uniform` or `LastK`
    /// student is deeper than its teacher (some student layer would have no teacher layer),
    /// or when an `Explicit` list has the wrong length or names a layer the teacher lacks.
    pub fn pairs(
        &self,
        student_layers: usize,
        teacher_layers: usize,
    ) -> Result<Vec<(usize, usize)>> {
        if student_layers == 0 {
            return Err(Error::Invalid(format!(
                "layer map {self}: the student has no layers to map"
            )));
        }
        let deeper = || {
            Error::Invalid(format!(
                "layer map {self}: student has {student_layers} layers but the teacher only \
                 {teacher_layers}; use an explicit list (e.g. layer_map = \"0,0,1\") to map \
                 several student layers to one teacher layer"
            ))
        };
        match self {
            LayerMap::Uniform => {
                if student_layers > teacher_layers {
                    return Err(deeper());
                }
                let k = teacher_layers / student_layers;
                Ok((0..student_layers).map(|i| (i, i * k + k - 1)).collect())
            }
            LayerMap::LastK => {
                if student_layers > teacher_layers {
                    return Err(deeper());
                }
                let offset = teacher_layers - student_layers;
                Ok((0..student_layers).map(|i| (i, offset + i)).collect())
            }
            LayerMap::Explicit(layers) => {
                if layers.len() != student_layers {
                    return Err(Error::Invalid(format!(
                        "layer map \"{self}\" lists {} teacher layers but the student has \
                         {student_layers} layers; give exactly one per student layer",
                        layers.len()
                    )));
                }
                if let Some(&bad) = layers.iter().find(|&&l| l >= teacher_layers) {
                    return Err(Error::Invalid(format!(
                        "layer map \"{self}\" names teacher layer {bad}, but the teacher has \
                         {teacher_layers} layers (0..={})",
                        teacher_layers.saturating_sub(1)
                    )));
                }
                Ok(layers.iter().copied().enumerate().collect())
            }
        }
    }
}

/// Parses `"uniform"`, `"last"` (case-insensitive) or a comma-separated list of 0-based
/// teacher layers such as `"0, 2, 5"`.
impl FromStr for LayerMap {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let text = s.trim();
        if text.eq_ignore_ascii_case("uniform") {
            return Ok(LayerMap::Uniform);
        }
        if text.eq_ignore_ascii_case("last") {
            return Ok(LayerMap::LastK);
        }
        let parse_error = || {
            Error::Invalid(format!(
                "invalid layer map {s:?}: expected \"uniform\", \"last\", or a comma-separated \
                 list of 0-based teacher layers such as \"0,2,5\""
            ))
        };
        if text.is_empty() {
            return Err(parse_error());
        }
        text.split(',')
            .map(|item| item.trim().parse::<usize>().map_err(|_| parse_error()))
            .collect::<Result<Vec<_>>>()
            .map(LayerMap::Explicit)
    }
}

/// The inverse of [`FromStr`]: `uniform`, `last`, or `0,2,5`.
impl fmt::Display for LayerMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerMap::Uniform => f.write_str("uniform"),
            LayerMap::LastK => f.write_str("last"),
            LayerMap::Explicit(layers) => {
                let items: Vec<String> = layers.iter().map(|l| l.to_string()).collect();
                f.write_str(&items.join(","))
            }
        }
    }
}

impl TryFrom<String> for LayerMap {
    type Error = Error;

    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<LayerMap> for String {
    fn from(map: LayerMap) -> String {
        map.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn teacher_layers(map: &LayerMap, student: usize, teacher: usize) -> Vec<usize> {
        let pairs = map.pairs(student, teacher).unwrap();
        let students: Vec<usize> = pairs.iter().map(|p| p.0).collect();
        assert_eq!(students, (0..student).collect::<Vec<_>>());
        pairs.iter().map(|p| p.1).collect()
    }

    fn invalid_message<T: fmt::Debug>(result: Result<T>) -> String {
        match result {
            Err(Error::Invalid(msg)) => msg,
            other => panic!("expected Error::Invalid, got {other:?}"),
        }
    }

    #[test]
    fn uniform_takes_the_last_layer_of_each_block() {
        let pairs = LayerMap::Uniform.pairs(3, 6).unwrap();
        assert_eq!(pairs, vec![(0, 1), (1, 3), (2, 5)]);
        assert_eq!(teacher_layers(&LayerMap::Uniform, 4, 12), vec![2, 5, 8, 11]);
        assert_eq!(
            teacher_layers(&LayerMap::Uniform, 6, 6),
            vec![0, 1, 2, 3, 4, 5]
        );
        // 12 / 5 floors to k = 2: the teacher's top two layers go unused.
        assert_eq!(
            teacher_layers(&LayerMap::Uniform, 5, 12),
            vec![1, 3, 5, 7, 9]
        );
    }

    #[test]
    fn last_k_takes_the_top_layers() {
        assert_eq!(teacher_layers(&LayerMap::LastK, 3, 6), vec![3, 4, 5]);
        assert_eq!(teacher_layers(&LayerMap::LastK, 4, 12), vec![8, 9, 10, 11]);
    }

    #[test]
    fn explicit_maps_as_listed() {
        let map = LayerMap::Explicit(vec![5, 0, 5]);
        assert_eq!(map.pairs(3, 6).unwrap(), vec![(0, 5), (1, 0), (2, 5)]);
        // Explicit lists may serve a student deeper than its teacher.
        assert_eq!(
            teacher_layers(&LayerMap::Explicit(vec![0, 0, 1]), 3, 2),
            vec![0, 0, 1]
        );
    }

    #[test]
    fn explicit_validation_errors() {
        let msg = invalid_message(LayerMap::Explicit(vec![0, 2]).pairs(3, 6));
        assert!(
            msg.contains("lists 2 teacher layers") && msg.contains("3 layers"),
            "{msg}"
        );
        let msg = invalid_message(LayerMap::Explicit(vec![0, 2, 6]).pairs(3, 6));
        assert!(
            msg.contains("teacher layer 6") && msg.contains("0..=5"),
            "{msg}"
        );
    }

    #[test]
    fn student_deeper_than_teacher_is_an_error() {
        for map in [LayerMap::Uniform, LayerMap::LastK] {
            let msg = invalid_message(map.pairs(7, 6));
            assert!(msg.contains("7 layers") && msg.contains("only 6"), "{msg}");
        }
        let msg = invalid_message(LayerMap::Uniform.pairs(0, 6));
        assert!(msg.contains("no layers"), "{msg}");
    }

    #[test]
    fn parses_names_and_lists() {
        assert_eq!("uniform".parse::<LayerMap>().unwrap(), LayerMap::Uniform);
        assert_eq!(" Last ".parse::<LayerMap>().unwrap(), LayerMap::LastK);
        assert_eq!(
            "0,2,5".parse::<LayerMap>().unwrap(),
            LayerMap::Explicit(vec![0, 2, 5])
        );
        assert_eq!(
            " 1, 3 ,5 ".parse::<LayerMap>().unwrap(),
            LayerMap::Explicit(vec![1, 3, 5])
        );
        assert_eq!(
            "7".parse::<LayerMap>().unwrap(),
            LayerMap::Explicit(vec![7])
        );
        for bad in ["", "  ", "unifrom", "1,,2", "1,2,", "-1,2", "1;2", "a,b"] {
            let msg = invalid_message(bad.parse::<LayerMap>());
            assert!(msg.contains("expected \"uniform\""), "{bad:?}: {msg}");
        }
    }

    #[test]
    fn display_round_trips() {
        for map in [
            LayerMap::Uniform,
            LayerMap::LastK,
            LayerMap::Explicit(vec![0, 2, 5]),
        ] {
            assert_eq!(map.to_string().parse::<LayerMap>().unwrap(), map);
        }
    }

    #[test]
    fn deserializes_from_config_strings() {
        #[derive(Deserialize)]
        struct Config {
            layer_map: LayerMap,
        }
        let parse = |json: &str| serde_json::from_str::<Config>(json).map(|c| c.layer_map);
        assert_eq!(
            parse(r#"{"layer_map": "uniform"}"#).unwrap(),
            LayerMap::Uniform
        );
        assert_eq!(parse(r#"{"layer_map": "last"}"#).unwrap(), LayerMap::LastK);
        assert_eq!(
            parse(r#"{"layer_map": "1,3,5"}"#).unwrap(),
            LayerMap::Explicit(vec![1, 3, 5])
        );
        let err = parse(r#"{"layer_map": "sideways"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid layer map"), "{err}");
        let json = serde_json::to_string(&LayerMap::Explicit(vec![1, 3, 5])).unwrap();
        assert_eq!(json, r#""1,3,5""#);
    }
}
