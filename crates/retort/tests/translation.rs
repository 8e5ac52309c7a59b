//! Translation through the trainer (issue 15): a translator trained from scratch by `retort
//! train` on a toy parallel corpus learns it (dev BLEU from 0 to well above 30), its best
//! checkpoint translates with the BLEU that chose it, every tensor trains; a smaller one is
//! distilled from it word by word (online soft_kl) and on its cached beam translations
//! (sequence level); bad set-ups are refused with errors that say what to do.

mod common;

use std::path::{Path, PathBuf};

use retort::distill::run::distill;
use retort::eval::evaluate_translator;
use retort::model::generate::DecodeOptions;
use retort::model::seq2seq::Seq2Seq;
use retort::model::Model;
use retort::objective::terms::{Term, TermKind};
use retort::task::translation::DEV_DECODING;
use retort::task::Task;
use retort::train::config::{
    DistillConfig, FreshStudent, StudentSection, TrainConfig, TranslatorShape,
};
use retort::train::finetune::fine_tune;
use retort::train::translator::{translator_config, FRESH};
use retort::translate::Translator;

/// The toy language pair: each English word has one "German" word (the word reversed, then
/// "x"), in the same order. A model that learns it must align target with source tokens.
const WORDS: [&str; 10] = [
    "red", "blue", "green", "small", "big", "dog", "cat", "bird", "house", "tree",
];

fn german(word: &str) -> String {
    word.chars().rev().chain(std::iter::once('x')).collect()
}

/// `NAME.en` and `NAME.de` with `n` sentence pairs of 2 to 5 words (a fixed pseudo-random
/// draw per `seed`); returns the source file.
fn write_pairs(dir: &Path, name: &str, n: usize, seed: u64) -> PathBuf {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = |k: usize| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) % k as u64) as usize
    };
    let (mut en, mut de) = (String::new(), String::new());
    for _ in 0..n {
        let words: Vec<&str> = (0..2 + next(4)).map(|_| WORDS[next(WORDS.len())]).collect();
        en.push_str(&words.join(" "));
        en.push('\n');
        let target: Vec<String> = words.iter().map(|w| german(w)).collect();
        de.push_str(&target.join(" "));
        de.push('\n');
    }
    std::fs::write(dir.join(format!("{name}.de")), de).unwrap();
    let source = dir.join(format!("{name}.en"));
    std::fs::write(&source, en).unwrap();
    source
}

fn toy_shape() -> TranslatorShape {
    TranslatorShape {
        vocab_size: 300,
        min_frequency: 2,
        d_model: 64,
        layers: 1,
        heads: 2,
        ffn_dim: 128,
        dropout: 0.0,
    }
}

fn toy_config(dir: &Path) -> TrainConfig {
    let mut c = TrainConfig::default();
    c.model.init = PathBuf::from(FRESH);
    c.model.task = Task::Translation;
    c.model.max_len = 24;
    c.model.translator = toy_shape();
    c.data.train = write_pairs(dir, "train", 300, 1);
    c.data.dev = write_pairs(dir, "val", 30, 2);
    c.train.epochs = 10;
    c.train.batch_size = 8;
    c.train.lr = 5e-3;
    c.train.warmup_ratio = 0.1;
    c.train.eval_every = 0; // at the end of each epoch
    c.train.label_smoothing = 0.1;
    c.output.dir = dir.join("run");
    c
}

#[test]
fn a_translator_trained_from_scratch_learns_and_its_best_translates_as_scored() {
    let tmp = tempfile::tempdir().unwrap();
    let c = toy_config(tmp.path());
    let run = fine_tune(&c, false, false).unwrap();
    assert_eq!(run.metric, "bleu");
    let evals: Vec<f64> = common::metrics_records(&c.output.dir)
        .iter()
        .filter(|r| r["event"] == "eval")
        .map(|r| r["dev_bleu"].as_f64().unwrap())
        .collect();
    assert_eq!(evals.len(), 10, "one evaluation per epoch");
    assert!(
        evals[0] < 5.0,
        "an untrained translator scores {}",
        evals[0]
    );
    assert!(run.best_score > 30.0, "dev BLEU only reached {evals:?}");
    let best = evals.iter().cloned().fold(f64::MIN, f64::max);
    assert_eq!(run.best_score, best);
    // The loss fell: the last logged loss is well below the first.
    let losses: Vec<f64> = common::metrics_records(&c.output.dir)
        .iter()
        .filter(|r| r["event"] == "train")
        .map(|r| r["loss"].as_f64().unwrap())
        .collect();
    assert!(losses.last().unwrap() < &(losses[0] / 2.0), "{losses:?}");

    // best/ is a translator with its vocabulary, and scores as the trainer scored it.
    let translator = Translator::load(&run.best_dir).unwrap();
    let dev = Task::Translation.read(&c.data.dev).unwrap();
    let (report, lines) = evaluate_translator(&translator, &dev, &DEV_DECODING, 7).unwrap();
    assert!(
        (report.scores.primary_value() - run.best_score).abs() < 1e-9,
        "eval {} vs the trainer's {}",
        report.scores.primary_value(),
        run.best_score
    );
    assert_eq!(lines.len(), 30);
    assert!(lines.iter().all(|l| !l.is_empty()));
    // Most translations are right word for word.
    let references = std::fs::read_to_string(tmp.path().join("val.de")).unwrap();
    let exact = lines
        .iter()
        .zip(references.lines())
        .filter(|(h, r)| h == r)
        .count();
    assert!(exact >= 10, "{exact} of 30 exact: {lines:?}");

    distil_word_and_sequence_level(tmp.path(), &c, &run.best_dir);
}

/// A distillation config of a 1-layer, 32-wide student of `teacher` on the teacher's data.
fn student_config(
    dir: &Path,
    teacher_run: &TrainConfig,
    teacher: &Path,
    out: &str,
) -> DistillConfig {
    let mut d = DistillConfig::default();
    d.teacher.dir = teacher.to_path_buf();
    d.student = StudentSection::Fresh(FreshStudent {
        layers: 1,
        hidden_size: 32,
        heads: 2,
        intermediate_size: 64,
        ..FreshStudent::default()
    });
    d.data = teacher_run.data.clone();
    d.distill.cache_dir = dir.join("cache");
    d.train = teacher_run.train.clone();
    d.train.epochs = 4;
    d.output.dir = dir.join(out);
    d
}

/// Word-level (hard_ce + soft_kl against the online teacher) and sequence-level (hard_ce on
/// the teacher's cached beam translations) distillation of the toy teacher.
fn distil_word_and_sequence_level(dir: &Path, teacher_run: &TrainConfig, teacher: &Path) {
    let weights = std::fs::read(teacher.join("model.safetensors")).unwrap();
    let word = student_config(dir, teacher_run, teacher, "word");
    let s = distill(&word, false, false).unwrap();
    assert_eq!(s.metric, "bleu");
    assert!(s.teacher_score > 30.0, "{}", s.teacher_score);
    assert!(s.student_parameters < s.teacher_parameters / 2);
    assert_eq!(
        s.teacher_cache_hit, None,
        "word-level terms run the teacher online"
    );
    let soft: Vec<f64> = common::metrics_records(&word.output.dir)
        .iter()
        .filter(|r| r["event"] == "train")
        .map(|r| r["terms"]["soft_kl"].as_f64().unwrap())
        .collect();
    assert!(
        soft.len() > 2 && soft.last().unwrap() < &soft[0],
        "{soft:?}"
    );
    assert!(Translator::load(&s.run.best_dir).is_ok());
    // The teacher only runs forward.
    assert_eq!(
        std::fs::read(teacher.join("model.safetensors")).unwrap(),
        weights
    );

    // Sequence level: the targets are the teacher's beam-2 translations of the sources.
    let mut seq = student_config(dir, teacher_run, teacher, "sequence");
    seq.distill.sequence_level = true;
    seq.distill.sequence_beam = 2;
    seq.distill.terms = Some(vec![Term::new(TermKind::HardCe, 1.0)]);
    let s = distill(&seq, false, false).unwrap();
    assert_eq!(s.teacher_cache_hit, Some(false));
    let cached = s.teacher_cache_path.clone().unwrap();
    let sources = retort::text::lines::read_lines(&seq.data.train).unwrap();
    let translator = Translator::load(teacher).unwrap();
    let opts = DecodeOptions {
        beam: 2,
        ..DecodeOptions::default()
    };
    let want = translator
        .translate(&sources, &opts, 32, false)
        .unwrap()
        .lines;
    let got: Vec<String> = std::fs::read_to_string(&cached)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(got, want, "the cache holds the teacher's beam translations");
    assert!(s.run.best_score > 0.0);
    // A second run reads them back.
    seq.output.dir = dir.join("sequence-again");
    seq.train.max_steps = 2;
    let again = distill(&seq, false, false).unwrap();
    assert_eq!(again.teacher_cache_hit, Some(true));
}

#[test]
fn every_tensor_of_a_fresh_translator_trains_through_the_trainer() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = toy_config(tmp.path());
    c.train.max_steps = 1;
    c.train.warmup_ratio = 0.0;
    let run = fine_tune(&c, false, false).unwrap();
    assert_eq!(run.steps, 1);
    let vocab = retort::text::subword::SubwordTokenizer::load(&c.output.dir.join("vocab")).unwrap();
    let shape = translator_config(&toy_shape(), vocab.vocab_size(), c.model.max_len);
    let before = Seq2Seq::fresh(shape, c.train.seed).unwrap();
    let after = Seq2Seq::load(&c.output.dir.join("last")).unwrap();
    let unchanged: Vec<&str> = before
        .params()
        .iter()
        .filter(|(name, v)| {
            let trained = after.params().get(name).unwrap();
            common::max_abs_diff(v.as_tensor(), trained.as_tensor()) == 0.0
        })
        .map(|(name, _)| name)
        .collect();
    assert!(
        unchanged.is_empty(),
        "one step left {unchanged:?} unchanged"
    );
    assert_eq!(before.params().count(), after.params().count());
}

#[test]
fn bad_translation_set_ups_are_refused_with_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = toy_config(tmp.path());
    // An encoder is not a translator.
    c.model.init = common::fixture("tiny-bert");
    let err = fine_tune(&c, false, false).unwrap_err().to_string();
    assert!(
        err.contains("not a translator") && err.contains("\"fresh\""),
        "{err}"
    );
    assert!(
        !c.output.dir.exists(),
        "nothing is written for a refused run"
    );

    // A source file with no reference beside it.
    let c = toy_config(tmp.path());
    let lone = tmp.path().join("lone");
    std::fs::create_dir(&lone).unwrap();
    std::fs::write(lone.join("test.en"), "red dog\n").unwrap();
    let err = Task::Translation
        .read(&lone.join("test.en"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no reference file"), "{err}");
    // Two candidates: the corpus is ambiguous.
    std::fs::write(lone.join("test.de"), "derx godx\n").unwrap();
    std::fs::write(lone.join("test.fr"), "rouge chien\n").unwrap();
    let err = Task::Translation
        .read(&lone.join("test.en"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("several files"), "{err}");
    // Misaligned files name both counts.
    std::fs::remove_file(lone.join("test.fr")).unwrap();
    std::fs::write(lone.join("test.de"), "derx godx\ntac\n").unwrap();
    let err = Task::Translation
        .read(&lone.join("test.en"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("has 1 lines but") && err.contains("has 2"),
        "{err}"
    );

    // A vocabulary too small for byte-level BPE, and label smoothing of 1.
    let mut small = c.clone();
    small.model.translator.vocab_size = 100;
    let err = fine_tune(&small, false, false).unwrap_err().to_string();
    assert!(err.contains("vocabulary of 100"), "{err}");
    let mut smooth = c.clone();
    smooth.train.label_smoothing = 1.0;
    let err = fine_tune(&smooth, false, false).unwrap_err().to_string();
    assert!(err.contains("train.label_smoothing"), "{err}");

    // A translator's distillation refuses what it cannot do, before writing anything.
    let teacher = tmp.path().join("untrained-translator");
    let lines = retort::text::lines::read_lines(&c.data.train).unwrap();
    let vocab = retort::text::subword::SubwordTokenizer::train(&lines, 300, 2).unwrap();
    vocab.save(&teacher).unwrap();
    let shape = translator_config(&toy_shape(), vocab.vocab_size(), 24);
    Seq2Seq::fresh(shape, 1).unwrap().save(&teacher).unwrap();
    let refused = |edit: &dyn Fn(&mut DistillConfig)| {
        let mut d = student_config(tmp.path(), &c, &teacher, "refused");
        edit(&mut d);
        let err = distill(&d, false, false).unwrap_err().to_string();
        assert!(!d.output.dir.exists(), "{err}");
        err
    };
    let err = refused(&|d| {
        d.distill.terms = Some(vec![Term::new(TermKind::HiddenMse, 1.0)]);
    });
    assert!(err.contains("does not apply to a translator"), "{err}");
    let err = refused(&|d| d.distill.mutual = true);
    assert!(err.contains("mutual learning"), "{err}");
    let err = refused(&|d| d.student = StudentSection::default());
    assert!(err.contains("init = \"fresh\""), "{err}");
    let err = refused(&|d| d.distill.sequence_beam = 0);
    assert!(err.contains("distill.sequence_beam"), "{err}");
}
