//! Knowledge distillation: `retort distill` (teacher, student, transfer set, objective, then
//! the trainer), general distillation on unlabelled text (TinyBERT's first stage) and the
//! teacher's logits cached on disk; a translator's word- and sequence-level distillation.

pub mod ensemble;
pub mod general;
pub mod multitask;
pub mod peers;
pub mod run;
pub mod teacher_cache;
pub mod translation;
