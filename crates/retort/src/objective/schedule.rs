//! Values that change over training: a loss term's weight or the temperature may be a ramp
//! from a start value to an end value over the run (TextBrewer's temperature and weight
//! schedulers), instead of a number.
//!
//! In a config:
//! ```toml
//! [distill]
//! temperature = { start = 8.0, end = 1.0, shape = "cosine" }
//! [[distill.terms]]
//! kind = "hard_ce"
//! weight = { start = 0.0, end = 1.0 }     # linear unless shape says otherwise
//! ```
//! The trainer gives each batch its progress (the fraction of the run's optimiser steps done
//! before it), and the objective reads every scheduled value at that progress.

use std::f64::consts::PI;

use serde::{Deserialize, Serialize};

/// A number, or a ramp over the run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Scheduled {
    Constant(f64),
    Ramp(Ramp),
}

/// A number or a `{ start, end, shape }` table, with errors that say which was meant (serde's
/// untagged enums only say that nothing matched).
impl<'de> Deserialize<'de> for Scheduled {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Scheduled;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number, or a schedule { start = .., end = .., shape = \"linear\" | \"cosine\" }")
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Scheduled, E> {
                Ok(Scheduled::Constant(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Scheduled, E> {
                Ok(Scheduled::Constant(v as f64))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Scheduled, E> {
                Ok(Scheduled::Constant(v as f64))
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                map: M,
            ) -> Result<Scheduled, M::Error> {
                Ramp::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(Scheduled::Ramp)
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// From `start` (progress 0) to `end` (progress 1).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Ramp {
    pub start: f64,
    pub end: f64,
    #[serde(default)]
    pub shape: Shape,
}

/// How a ramp goes from its start to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    /// At a constant rate.
    #[default]
    Linear,
    /// Half a cosine: slow at both ends, fastest in the middle.
    Cosine,
}

impl Scheduled {
    /// The value at `progress` (the fraction of the run done, clamped to [0, 1]).
    pub fn at(&self, progress: f64) -> f64 {
        match self {
            Scheduled::Constant(v) => *v,
            Scheduled::Ramp(r) => {
                let p = progress.clamp(0.0, 1.0);
                let f = match r.shape {
                    Shape::Linear => p,
                    Shape::Cosine => (1.0 - (PI * p).cos()) / 2.0,
                };
                r.start + (r.end - r.start) * f
            }
        }
    }

    /// Whether the value changes over the run.
    pub fn varies(&self) -> bool {
        matches!(self, Scheduled::Ramp(r) if r.start != r.end)
    }

    /// The values it takes at the ends of the run (both the same for a constant): every
    /// value in between lies between them, so checking these checks the whole schedule.
    pub fn ends(&self) -> [f64; 2] {
        [self.at(0.0), self.at(1.0)]
    }

    /// `Some(v)` when it is the constant `v`.
    pub fn constant(&self) -> Option<f64> {
        match self {
            Scheduled::Constant(v) => Some(*v),
            Scheduled::Ramp(_) => None,
        }
    }
}

impl From<f64> for Scheduled {
    fn from(v: f64) -> Self {
        Scheduled::Constant(v)
    }
}

impl std::fmt::Display for Scheduled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scheduled::Constant(v) => write!(f, "{v}"),
            Scheduled::Ramp(r) => {
                let shape = match r.shape {
                    Shape::Linear => "linear",
                    Shape::Cosine => "cosine",
                };
                write!(f, "{} -> {} ({shape})", r.start, r.end)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(start: f64, end: f64, shape: Shape) -> Scheduled {
        Scheduled::Ramp(Ramp { start, end, shape })
    }

    #[test]
    fn ramps_go_from_start_to_end() {
        let linear = ramp(4.0, 1.0, Shape::Linear);
        assert_eq!(linear.at(0.0), 4.0);
        assert_eq!(linear.at(0.5), 2.5);
        assert_eq!(linear.at(1.0), 1.0);
        // Outside the run: held at the ends.
        assert_eq!(linear.at(-1.0), 4.0);
        assert_eq!(linear.at(2.0), 1.0);
        let cosine = ramp(0.0, 1.0, Shape::Cosine);
        assert_eq!(cosine.at(0.0), 0.0);
        assert!((cosine.at(0.5) - 0.5).abs() < 1e-12);
        assert!((cosine.at(0.25) - (1.0 - (PI / 4.0).cos()) / 2.0).abs() < 1e-12);
        assert!((cosine.at(1.0) - 1.0).abs() < 1e-12);
        // Slower than linear at the start, faster in the middle.
        assert!(cosine.at(0.1) < 0.1);
        assert_eq!(Scheduled::from(2.0).at(0.7), 2.0);
        assert!(!Scheduled::from(2.0).varies() && linear.varies());
        assert!(!ramp(1.0, 1.0, Shape::Cosine).varies());
        assert_eq!(linear.ends(), [4.0, 1.0]);
    }

    #[test]
    fn configs_give_a_number_or_a_table() {
        #[derive(Deserialize)]
        struct T {
            a: Scheduled,
            b: Scheduled,
            c: Scheduled,
        }
        let t: T = toml::from_str(
            "a = 0.5\nb = { start = 8.0, end = 1.0, shape = \"cosine\" }\nc = { start = 0, end = 1 }",
        )
        .unwrap();
        assert_eq!(t.a, Scheduled::Constant(0.5));
        assert_eq!(t.b, ramp(8.0, 1.0, Shape::Cosine));
        assert_eq!(t.c, ramp(0.0, 1.0, Shape::Linear));
        assert!(toml::from_str::<T>("a = 1\nb = { start = 1.0 }\nc = 1").is_err());
        assert!(
            toml::from_str::<T>("a = 1\nb = { start = 1, end = 2, shape = \"step\" }\nc = 1")
                .is_err()
        );
    }
}
