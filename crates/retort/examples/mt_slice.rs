//! Times a slice of translator training on Multi30k (issue 15), to size a teacher that trains
//! within a session: learns a BPE vocabulary on both training sides, then for each model size
//! runs a few hundred AdamW steps of teacher-forced cross-entropy (label smoothing 0.1) on length-grouped batches
//! of real sentence pairs, and prints the seconds per step, the tokens per second, the loss
//! curve, and what one epoch would take.
//!
//!     cargo run --release --example mt_slice -- [DATA_DIR] [STEPS] [SIZES]
//!
//! DATA_DIR defaults to ../shared/data/multi30k, STEPS to 100, SIZES to "256x3,384x4,512x6"
//! (d_model x layers each side; 4 heads below 512, 8 from it; feed-forward 4 x d_model).

use std::path::PathBuf;
use std::time::Instant;

use candle_core::Tensor;
use retort::model::kernels::{configure_process, cross_entropy};
use retort::model::layers::with_dropout_seed;
use retort::model::seq2seq::{pad_ids, Seq2Seq, Seq2SeqConfig};
use retort::model::Pass;
use retort::text::lines::read_lines;
use retort::text::subword::SubwordTokenizer;
use retort::train::optim::{AdamW, Grads, Schedule};

const BATCH_TOKENS: usize = 2048;

fn main() -> retort::Result<()> {
    configure_process();
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(
        args.get(1)
            .map_or("../shared/data/multi30k", |s| s.as_str()),
    );
    let steps: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100);
    let sizes = args.get(3).map_or("256x3,384x4,512x6", |s| s.as_str());
    let (en, de) = (
        read_lines(&dir.join("train.en"))?,
        read_lines(&dir.join("train.de"))?,
    );
    let start = Instant::now();
    let all: Vec<String> = en.iter().chain(&de).cloned().collect();
    let tok = SubwordTokenizer::train(&all, 10_000, 2)?;
    println!(
        "vocabulary: {} tokens in {:.1} s",
        tok.vocab_size(),
        start.elapsed().as_secs_f64()
    );
    let mut pairs = Vec::with_capacity(en.len());
    for (s, t) in en.iter().zip(&de) {
        let mut target = vec![1];
        target.extend(tok.encode(t)?);
        target.push(2);
        pairs.push((tok.encode(s)?, target));
    }
    // Length-grouped batches of about BATCH_TOKENS target tokens, in a shuffled order.
    let mut order: Vec<usize> = (0..pairs.len()).collect();
    order.sort_by_key(|&i| (pairs[i].1.len(), pairs[i].0.len()));
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut current = Vec::new();
    for i in order {
        current.push(i);
        if current.len() * pairs[i].1.len() >= BATCH_TOKENS {
            batches.push(std::mem::take(&mut current));
        }
    }
    batches.push(current);
    let mut rng = 0x9e37_79b9u64;
    for k in (1..batches.len()).rev() {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        batches.swap(k, (rng >> 33) as usize % (k + 1));
    }
    let target_tokens: usize = pairs.iter().map(|p| p.1.len() - 1).sum();
    println!(
        "{} pairs, {} batches of ~{BATCH_TOKENS} target tokens per epoch",
        pairs.len(),
        batches.len()
    );

    for size in sizes.split(',') {
        let (d, layers) = size.split_once('x').expect("sizes like 256x3");
        let (d, layers): (usize, usize) = (d.parse().unwrap(), layers.parse().unwrap());
        let heads = if d >= 512 { 8 } else { 4 };
        let config = Seq2SeqConfig::shape(tok.vocab_size(), d, layers, heads, 256);
        let model = Seq2Seq::fresh(config, 42)?;
        let mut opt = AdamW::new(&model.params, 0.0)?;
        let vars = opt.vars();
        let schedule = Schedule {
            peak: 5e-4,
            warmup: steps / 4,
            total: steps * 10,
        };
        let started = Instant::now();
        let mut tokens = 0usize;
        for (step, batch) in batches.iter().cycle().take(steps).enumerate() {
            let src: Vec<Vec<u32>> = batch.iter().map(|&i| pairs[i].0.clone()).collect();
            let input: Vec<Vec<u32>> = batch
                .iter()
                .map(|&i| pairs[i].1[..pairs[i].1.len() - 1].to_vec())
                .collect();
            let gold: Vec<Vec<u32>> = batch.iter().map(|&i| pairs[i].1[1..].to_vec()).collect();
            let (s, mask) = pad_ids(&src, 0)?;
            let (t, _) = pad_ids(&input, 0)?;
            // The real target positions (row-major over the padded batch) and their tokens.
            let width = input.iter().map(Vec::len).max().unwrap_or(1);
            let (mut rows, mut labels) = (Vec::new(), Vec::new());
            for (b, g) in gold.iter().enumerate() {
                rows.extend((0..g.len()).map(|j| (b * width + j) as u32));
                labels.extend(g);
            }
            let rows = Tensor::new(rows.as_slice(), &candle_core::Device::Cpu)?;
            let loss = with_dropout_seed(step as u64, || -> retort::Result<Tensor> {
                let logits = model.forward(&s, &mask, &t, Pass::TRAIN)?;
                let (b, len, v) = logits.dims3()?;
                let real = logits.reshape((b * len, v))?.index_select(&rows, 0)?;
                Ok(cross_entropy(&real, &labels, 0.1)?.mean_all()?)
            })?;
            let grads_store = loss.backward()?;
            let mut grads = Grads::empty(vars.len());
            grads.accumulate(&grads_store, &vars, 1.0)?;
            grads.clip(1.0)?;
            opt.step(&grads, schedule.lr(step))?;
            tokens += gold.iter().map(Vec::len).sum::<usize>();
            if step % 25 == 0 || step + 1 == steps {
                println!("  {size} step {step}: loss {:.3}", loss.to_scalar::<f32>()?);
            }
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{size}: {} parameters, {:.3} s/step, {:.0} target tokens/s, one epoch ≈ {:.0} s",
            model.params.count(),
            secs / steps as f64,
            tokens as f64 / secs,
            target_tokens as f64 / (tokens as f64 / secs)
        );
    }
    Ok(())
}
