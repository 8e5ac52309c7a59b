//! Token classification (named entities) end to end on the tiny fixture: sub-word alignment,
//! truncation, token-level distillation terms, `retort train` / `distill` / eval / export /
//! predict on a tiny CoNLL corpus. Each run takes a fraction of a second.

mod common;

use candle_core::{Device, Tensor, Var};
use common::fixture;
use retort::distill::run::distill;
use retort::eval::evaluate;
use retort::model::{HeadKind, RowAxis};
use retort::objective::loss;
use retort::task::view::select_rows;
use retort::task::{predict_units, Input, Task};
use retort::train::config::{DistillConfig, StudentSection, TeacherLayersStudent};
use retort::train::finetune::fine_tune;
use retort::Classifier;

#[test]
fn the_first_piece_of_each_word_carries_its_label() {
    let tok = Classifier::load(&fixture("tiny-bert"), 32)
        .unwrap()
        .tokenizer;
    let words: Vec<String> = ["The", "unforgettable", "paris"].map(String::from).to_vec();
    let e = &tok.encode_words(std::slice::from_ref(&words)).unwrap()[0];
    let pieces: Vec<String> = e
        .encoded
        .ids
        .iter()
        .map(|&i| tok.token(i).unwrap())
        .collect();
    assert_eq!(
        pieces,
        ["[CLS]", "the", "un", "##forget", "##table", "paris", "[SEP]"]
    );
    // Rows: the first piece of each word; ##forget and ##table have none.
    assert_eq!(e.first_tokens(), vec![(1, 0), (2, 1), (5, 2)]);
}

#[test]
fn unlabelled_raw_text_gets_a_row_at_the_first_piece_of_each_word() {
    let tok = Classifier::load(&fixture("tiny-bert"), 32)
        .unwrap()
        .tokenizer;
    let text = Input::Text("The unforgettable paris, night".into());
    let (encoded, rows) = Task::TokenClassification
        .encode(&tok, &[&text])
        .unwrap()
        .remove(0);
    // [CLS] the un ##forget ##table paris , night [SEP]: the comma is a word of its own.
    assert_eq!(encoded.ids.len(), 9);
    assert_eq!(rows.positions, vec![1, 2, 5, 6, 7]);
    assert_eq!(rows.units, vec![0, 1, 2, 3, 4]);
}

#[test]
fn words_cut_by_truncation_are_counted_and_predicted_outside() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("long.txt");
    // "unforgettable" alone fills a window of 4: [CLS] un ##forget [SEP]; "paris" is cut.
    std::fs::write(&path, "unforgettable NN O O\nparis NN O B-LOC\n").unwrap();
    let task = Task::TokenClassification;
    let corpus = task.read(&path).unwrap();
    let c = Classifier::load(&fixture("tiny-bert"), 4).unwrap();
    let labels: Vec<String> = ["O", "B-LOC", "I-LOC"].map(String::from).to_vec();
    let data = task.data(&c.tokenizer, &corpus, &labels).unwrap();
    assert_eq!(data.rows[0].units, vec![0]);
    assert_eq!(data.units_without_rows(), 1);
    // The cut word is predicted "O": a gold LOC entity is missed, never dropped.
    let config = retort::model::ModelConfig {
        labels: labels.clone(),
        ..c.model.config().clone()
    };
    let predicted = task.decode(&config, &data.rows, &[2], &[vec![5.0, 0.0, 0.0]]);
    assert_eq!(predicted, vec![vec![0, 0]]);
    let scores = task.score(&labels, &[], &predicted, &data.gold).unwrap();
    assert_eq!(scores.entities.as_ref().unwrap().overall.support, 1);
    assert_eq!(scores.get("entity_recall"), Some(0.0));
}

#[test]
fn token_level_kd_terms_ignore_padding_and_non_first_pieces() {
    // Logits [2 sentences, 5 positions, 3 labels]; rows are two words of sentence 0 and one
    // of sentence 1. Everything else (special tokens, later pieces, padding) must get no
    // gradient and must not change the loss, even if it holds huge values.
    let dev = Device::Cpu;
    let values: Vec<f32> = (0..30).map(|i| ((i * 7) % 11) as f32 * 0.3 - 1.5).collect();
    let logits = Var::from_tensor(&Tensor::from_vec(values, (2, 5, 3), &dev).unwrap()).unwrap();
    let rows = [(0u32, 1u32), (0, 3), (1, 1)];
    let teacher = Tensor::new(
        &[[1.0f32, -1.0, 0.5], [0.0, 2.0, -2.0], [0.3, 0.3, 0.9]],
        &dev,
    )
    .unwrap();
    let no_mask = Tensor::zeros((1, 1), candle_core::DType::F32, &dev).unwrap();
    // Every logit term, and one weighted by the teacher's confidence per row.
    type Term = fn(&Tensor, &Tensor) -> Tensor;
    let terms: [(&str, Term); 3] = [
        ("soft_kl", |s, t| loss::soft_kl(s, t, 2.0).unwrap()),
        ("logistic", |s, t| loss::logistic(s, t, 2.0).unwrap()),
        ("weighted logit_mse", |s, t| {
            let rows = loss::logit_mse_rows(s, t).unwrap();
            loss::weighted_mean(&rows, &loss::teacher_confidence(t).unwrap()).unwrap()
        }),
    ];
    for (name, term) in terms {
        let loss_of = |l: &Tensor| {
            let s = select_rows(l, &rows, RowAxis::Labels, &no_mask).unwrap();
            term(&s, &teacher)
        };
        let loss = loss_of(logits.as_tensor());
        let g = common::gradient3(&loss, logits.as_tensor());
        for (b, seq) in g.iter().enumerate() {
            for (p, row) in seq.iter().enumerate() {
                let is_row = rows.contains(&(b as u32, p as u32));
                assert_eq!(
                    row.iter().any(|&x| x != 0.0),
                    is_row,
                    "{name} ({b}, {p}): {row:?}"
                );
            }
        }
        // A huge value at a non-row position changes nothing.
        let mut poisoned = logits.as_tensor().to_vec3::<f32>().unwrap();
        poisoned[1][4] = vec![1e30, -1e30, 1e30];
        poisoned[0][2] = vec![1e30, -1e30, 1e30];
        let poisoned = Tensor::new(poisoned, &dev).unwrap();
        let a = loss.to_scalar::<f32>().unwrap();
        assert_eq!(loss_of(&poisoned).to_scalar::<f32>().unwrap(), a, "{name}");
        // Finite differences at a row entry agree with autograd.
        common::assert_finite_difference(logits.as_tensor(), (0, 3, 1), g[0][3][1], loss_of);
    }
}

#[test]
fn a_tagger_trains_distils_evaluates_exports_and_predicts_entities() {
    let tmp = tempfile::tempdir().unwrap();
    let c = common::tagger_config(tmp.path());
    let s = fine_tune(&c, false, false).unwrap();
    assert_eq!(s.metric, "entity_f1");
    let teacher_dir = c.output.dir.join("best");
    let teacher = Classifier::load(&teacher_dir, 32).unwrap();
    assert_eq!(teacher.model.config().head, HeadKind::TokenClassification);
    assert_eq!(
        teacher.model.config().labels,
        ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    );
    let dev = Task::TokenClassification.read(&c.data.dev).unwrap();
    let r = evaluate(&teacher, &dev, 8).unwrap();
    // The tags follow the words: the teacher must have learned most of them.
    assert!(r.scores.primary_value() > 0.8, "{:?}", r.scores);
    assert_eq!(r.scores.primary_value(), s.best_score);
    let metrics = std::fs::read_to_string(c.output.dir.join("metrics.jsonl")).unwrap();
    assert!(metrics.contains("\"dev_entity_f1\""), "{metrics}");

    // Distil a one-layer student on soft + hard labels of the first pieces.
    let mut d = DistillConfig::default();
    d.teacher.dir = teacher_dir.clone();
    d.teacher.max_len = 32;
    d.student = StudentSection::TeacherLayers(TeacherLayersStudent {
        teacher_layers: vec![1],
        ..TeacherLayersStudent::default()
    });
    d.data.train = c.data.train.clone();
    d.data.dev = c.data.dev.clone();
    d.distill.cache_dir = tmp.path().join("cache");
    d.train = c.train.clone();
    d.output.dir = tmp.path().join("student");
    let ds = distill(&d, false, false).unwrap();
    assert_eq!(ds.run.metric, "entity_f1");
    assert!(ds.teacher_score > 0.8);
    assert_eq!(ds.teacher_cache_hit, Some(false));
    let student = Classifier::load(&d.output.dir.join("best"), 32).unwrap();
    assert_eq!(student.model.config().num_layers, 1);
    assert_eq!(student.model.config().head, HeadKind::TokenClassification);

    // The teacher cache holds one row per word of the training set.
    let cache = ds.teacher_cache_path.unwrap();
    let words = Task::TokenClassification
        .read(&c.data.train)
        .unwrap()
        .items
        .iter()
        .map(|i| i.gold.len())
        .sum::<usize>();
    let logits = candle_core::safetensors::load(&cache, &Device::Cpu).unwrap();
    assert_eq!(logits["logits"].dims(), [words, 5]);

    // Unlabelled text joins the transfer set: the teacher gives a row per word of it too.
    let text = tmp.path().join("unlabelled.txt");
    std::fs::write(&text, "the actor was in paris\n\nmusic night , the cafe\n").unwrap();
    d.augment.unlabelled = Some(text);
    d.output.dir = tmp.path().join("student-unlabelled");
    let du = distill(&d, false, false).unwrap();
    assert_eq!(du.unlabelled_examples, 2);
    assert_eq!(du.transfer_examples, ds.transfer_examples + 2);
    let logits =
        candle_core::safetensors::load(du.teacher_cache_path.unwrap(), &Device::Cpu).unwrap();
    assert_eq!(logits["logits"].dims(), [words + 5 + 5, 5]);
    d.augment.unlabelled = None;

    // Exported as BertForTokenClassification, it reloads with the same predictions.
    let out = tmp.path().join("export");
    retort::export::export(&teacher, &out, retort::export::Precision::AsLoaded).unwrap();
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["architectures"][0], "BertForTokenClassification");
    let again = Classifier::load(&out, 32).unwrap();
    let inputs = dev.inputs();
    assert_eq!(
        predict_units(&again, &inputs, 8).unwrap(),
        predict_units(&teacher, &inputs, 8).unwrap()
    );

    // Raw text: entities with character offsets, right with multi-byte characters before them.
    let text = "Élan: the actress kid was in paris";
    let p = Task::TokenClassification
        .predict(&teacher, &[text], 4)
        .unwrap();
    let entities = p[0]["entities"].as_array().unwrap();
    for e in entities {
        let (start, end) = (
            e["start"].as_u64().unwrap() as usize,
            e["end"].as_u64().unwrap() as usize,
        );
        let cut: String = text.chars().skip(start).take(end - start).collect();
        assert_eq!(e["text"], cut.as_str());
    }
    let found: Vec<(&str, &str)> = entities
        .iter()
        .map(|e| (e["type"].as_str().unwrap(), e["text"].as_str().unwrap()))
        .collect();
    assert!(found.contains(&("LOC", "paris")), "{found:?}");
    assert!(found.contains(&("PER", "actress kid")), "{found:?}");
}
