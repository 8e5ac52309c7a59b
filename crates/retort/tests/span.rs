//! Span heads (extractive question answering) on the tiny fixture: the start and end rows
//! over token positions, their distillation terms with padding masked, and the teacher cache
//! of position rows (equal to the teacher run online).

mod common;

use candle_core::{Device, Tensor, Var};
use common::fixture;
use retort::distill::teacher_cache::teacher_logits;
use retort::model::{HeadKind, Model, Outputs, Pass, RowAxis, Transformer};
use retort::objective::loss;
use retort::objective::mapping::LayerMap;
use retort::objective::terms::{Term, TermKind};
use retort::objective::{Objective, Teacher, TrainBatch};
use retort::task::view::{select_rows, MASKED};
use retort::task::{Rows, TaskData};
use retort::text::batch::pad_batch;
use retort::text::Encoded;
use retort::Classifier;

/// The tiny BERT with a fresh span head (seeded).
fn span_model(seed: u64) -> Transformer {
    let c = Classifier::load(&fixture("tiny-bert"), 32).unwrap();
    let outputs = ["start", "end"].map(String::from);
    c.transformer("test")
        .unwrap()
        .clone()
        .with_head(HeadKind::QuestionAnswering, &outputs, seed)
        .unwrap()
}

/// Four "windows" of different lengths, each with a start and an end row and gold positions.
fn windows() -> TaskData {
    let lens = [9usize, 5, 12, 7];
    let examples: Vec<Encoded> = lens
        .iter()
        .enumerate()
        .map(|(i, &n)| Encoded {
            ids: (0..n)
                .map(|p| match p {
                    0 => 2,
                    _ if p == n - 1 => 3,
                    _ => 5 + ((i * 13 + p * 7) % 40) as u32,
                })
                .collect(),
            type_ids: (0..n).map(|p| (p >= n / 2) as u32).collect(),
        })
        .collect();
    let rows = vec![
        Rows {
            positions: vec![0, 1],
            units: vec![0, 1],
        };
        lens.len()
    ];
    let gold = lens
        .iter()
        .map(|&n| vec![Some(n / 2), Some(n - 2)])
        .collect();
    TaskData {
        examples,
        rows,
        gold,
        spans: None,
        targets: None,
    }
}

/// The batch of `idx`, as the trainer builds it: rows (example, output), gold positions and
/// the rows' places in the teacher cache (two per example, in order).
fn batch(data: &TaskData, idx: &[usize]) -> TrainBatch {
    let items: Vec<&Encoded> = idx.iter().map(|&i| &data.examples[i]).collect();
    let (mut rows, mut labels, mut cache_rows) = (Vec::new(), Vec::new(), Vec::new());
    for (b, &i) in idx.iter().enumerate() {
        for (k, label) in data.row_labels(i).enumerate() {
            rows.push((b as u32, k as u32));
            labels.push(label);
            cache_rows.push((2 * i + k) as u32);
        }
    }
    TrainBatch {
        input: pad_batch(&items, 0).unwrap(),
        rows,
        axis: RowAxis::Positions,
        labels,
        cache_rows,
        progress: 0.0,
        multi_label: false,
    }
}

#[test]
fn span_kd_terms_ignore_padding_and_agree_with_finite_differences() {
    // Logits [2 windows, 4 positions, 2 outputs]; window 1 has 3 real tokens.
    let dev = Device::Cpu;
    let values: Vec<f32> = (0..16).map(|i| ((i * 5) % 7) as f32 * 0.4 - 1.2).collect();
    let logits = Var::from_tensor(&Tensor::from_vec(values, (2, 4, 2), &dev).unwrap()).unwrap();
    let mask = Tensor::new(&[[1f32, 1., 1., 1.], [1., 1., 1., 0.]], &dev).unwrap();
    let rows = [(0u32, 0u32), (0, 1), (1, 0), (1, 1)];
    let teacher = Tensor::new(
        &[
            [0.5f32, 2.0, -1.0, 0.0],
            [0.0, -1.0, 1.5, 0.2],
            [1.0, 0.1, 0.3, MASKED],
            [-0.5, 0.4, 2.0, MASKED],
        ],
        &dev,
    )
    .unwrap();
    let loss_of = |l: &Tensor| {
        let s = select_rows(l, &rows, RowAxis::Positions, &mask).unwrap();
        loss::soft_kl(&s, &teacher, 2.0).unwrap()
    };
    let loss = loss_of(logits.as_tensor());
    let a = loss.to_scalar::<f32>().unwrap();
    assert!(a.is_finite() && a > 0.0, "{a}");
    let g = common::gradient3(&loss, logits.as_tensor());
    // The padding position of window 1 gets no gradient; every real one does.
    assert_eq!(g[1][3], vec![0.0, 0.0]);
    assert!(
        g[1][..3]
            .iter()
            .chain(&g[0])
            .all(|o| o.iter().all(|&x| x != 0.0)),
        "{g:?}"
    );
    // A huge value at the padding position changes nothing.
    let mut poisoned = logits.as_tensor().to_vec3::<f32>().unwrap();
    poisoned[1][3] = vec![1e30, -1e30];
    let poisoned = Tensor::new(poisoned, &dev).unwrap();
    assert_eq!(loss_of(&poisoned).to_scalar::<f32>().unwrap(), a);
    // Finite differences at a real position agree with autograd.
    common::assert_finite_difference(logits.as_tensor(), (1, 2, 1), g[1][2][1], loss_of);
    // Hard cross-entropy of a masked row at a real gold position is finite.
    let s = select_rows(logits.as_tensor(), &rows, RowAxis::Positions, &mask).unwrap();
    let gold = Tensor::new(&[1u32, 2, 0, 2], &dev).unwrap();
    let ce = loss::hard_ce(&s, &gold)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(ce.is_finite(), "{ce}");
}

#[test]
fn cached_span_rows_equal_the_teacher_run_online() {
    let tmp = tempfile::tempdir().unwrap();
    let teacher = span_model(7);
    let teacher_dir = tmp.path().join("teacher");
    teacher.save(&teacher_dir).unwrap();
    let data = windows();
    let cached = teacher_logits(
        &teacher,
        &teacher_dir,
        &data,
        &tmp.path().join("cache"),
        3,
        &|_| {},
    )
    .unwrap();
    // Two rows per window, as wide as the longest window (12), padded with MASKED.
    assert_eq!(cached.logits.dims(), [8, 12]);
    let row = cached.logits.get(3).unwrap().to_vec1::<f32>().unwrap();
    assert!(row[..5].iter().all(|&x| x != MASKED) && row[5..].iter().all(|&x| x == MASKED));

    let terms = [
        Term::new(TermKind::HardCe, 0.5),
        Term::new(TermKind::SoftKl, 0.5),
    ];
    let objective = |cached_logits: Option<Tensor>| {
        let teacher = Teacher {
            model: Some(std::sync::Arc::new(span_model(7))),
            cached_logits,
            learns: None,
        };
        Objective::distill(&terms, &LayerMap::Uniform, 2.0, teacher, 3, 32, 1).unwrap()
    };
    let (from_cache, online) = (objective(Some(cached.logits.clone())), objective(None));
    let student = span_model(11);
    // A batch narrower than the cache (windows 1 and 3: 7 positions) and one as wide.
    for idx in [vec![1, 3], vec![2, 0, 1]] {
        let b = batch(&data, &idx);
        let out = student
            .forward(&b.input, Pass::INFERENCE, Outputs::default())
            .unwrap();
        let value = |o: &Objective| {
            let l = o.loss(&b, &out).unwrap();
            (l.total.to_scalar::<f32>().unwrap(), l.terms)
        };
        let (c, o) = (value(&from_cache), value(&online));
        assert!(
            (c.0 - o.0).abs() < 1e-5,
            "{idx:?}: cached {c:?} vs online {o:?}"
        );
        assert!(c.1.iter().all(|(_, v)| v.is_finite() && *v > 0.0), "{c:?}");
    }
}

#[test]
fn the_span_head_reads_its_own_tensors_back() {
    let tmp = tempfile::tempdir().unwrap();
    let model = span_model(3);
    model.save(tmp.path()).unwrap();
    for name in ["vocab.txt", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(fixture("tiny-bert").join(name), tmp.path().join(name)).unwrap();
    }
    let back = Classifier::load(tmp.path(), 32).unwrap();
    assert_eq!(back.model.config().head, HeadKind::QuestionAnswering);
    assert!(!back.report.fresh_head, "{:?}", back.report);
    let b = batch(&windows(), &[0, 1]);
    let run = |m: &Transformer| {
        m.forward(&b.input, Pass::INFERENCE, Outputs::default())
            .unwrap()
            .logits
    };
    let (a, c) = (run(&model), run(back.transformer("test").unwrap()));
    assert_eq!(a.dims(), [2, 9, 2]);
    assert_eq!(common::max_abs_diff(&a, &c), 0.0);
}

#[test]
fn a_transformers_question_answering_checkpoint_gives_its_start_and_end_logits() {
    // tests/fixtures/tiny-bert-qa: BertForQuestionAnswering saved by transformers, with the
    // start and end logits it computes (scripts/make_span_fixture.py).
    let c = Classifier::load(&fixture("tiny-bert-qa"), 64).unwrap();
    assert_eq!(c.model.config().head, HeadKind::QuestionAnswering);
    assert!(!c.report.fresh_head, "{:?}", c.report);
    let exp = common::expected("tiny-bert-qa");
    let ids = |k: &str| exp[k].to_dtype(candle_core::DType::U32).unwrap();
    let input = retort::model::EncoderInput {
        input_ids: ids("padded.input_ids"),
        token_type_ids: ids("padded.token_type_ids"),
        attention_mask: exp["padded.attention_mask"]
            .to_dtype(candle_core::DType::F32)
            .unwrap(),

        word_noise: None,

        target_ids: None,
    };
    let logits = c
        .model
        .forward(&input, Pass::INFERENCE, Outputs::default())
        .unwrap()
        .logits;
    let output = |o: usize| logits.narrow(2, o, 1).unwrap().squeeze(2).unwrap();
    let start = common::max_abs_diff(&output(0), &exp["padded.start_logits"]);
    let end = common::max_abs_diff(&output(1), &exp["padded.end_logits"]);
    assert!(start <= 1e-4 && end <= 1e-4, "start {start}, end {end}");
}
