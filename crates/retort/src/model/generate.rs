//! Generating sequences with a model that decodes one token at a time: greedy and beam
//! search, batched over sentences. Any [`StepModel`] decodes this way: the translator
//! ([`Seq2Seq`], with its key/value cache) and, in the tests, toy models whose best sequence
//! is known.

use candle_core::{Device, Tensor};

use super::seq2seq::{log_probs, pad_ids, DecoderState, Seq2Seq};
use crate::error::Result;

/// A model that gives next-token log-probabilities one step at a time.
pub trait StepModel {
    type State;
    /// Starts decoding `sources` (one row each).
    fn start(&self, sources: &[Vec<u32>]) -> Result<Self::State>;
    /// The log-probabilities `[rows][vocab]` of each row's next token after `tokens`, the
    /// token each row produced last (the start token at the first step).
    fn step(&self, state: &mut Self::State, tokens: &[u32]) -> Result<Vec<Vec<f32>>>;
    /// Keeps rows `rows` of the state, in that order (repeats allowed).
    fn select(&self, state: &mut Self::State, rows: &[u32]) -> Result<()>;
    /// The token every output starts from, and the one that ends it.
    fn start_token(&self) -> u32;
    fn end_token(&self) -> u32;
    /// The most tokens it can decode (its position table's size).
    fn longest_output(&self) -> usize {
        usize::MAX
    }
}

/// How long outputs may be, and how beams are ranked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodeOptions {
    /// Hypotheses kept per sentence (1: greedy).
    pub beam: usize,
    /// A finished hypothesis ranks by its log-probability / length^`length_penalty` (0: the
    /// plain log-probability; above 0 favours longer outputs).
    pub length_penalty: f64,
    /// At most `max_len_a × source tokens + max_len_b` tokens are generated, end included.
    pub max_len_a: f64,
    pub max_len_b: usize,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            beam: 5,
            length_penalty: 1.0,
            max_len_a: 1.5,
            max_len_b: 10,
        }
    }
}

impl DecodeOptions {
    /// Tokens a source of `source_len` tokens may get, within what `model` can decode.
    fn max_len<M: StepModel>(&self, model: &M, source_len: usize) -> usize {
        let wanted = (self.max_len_a * source_len as f64) as usize + self.max_len_b;
        wanted.min(model.longest_output()).max(1)
    }
}

/// The most likely token at each step, for every sentence at once; outputs without their
/// end token.
pub fn greedy<M: StepModel>(
    model: &M,
    sources: &[Vec<u32>],
    opts: &DecodeOptions,
) -> Result<Vec<Vec<u32>>> {
    let limits: Vec<usize> = sources
        .iter()
        .map(|s| opts.max_len(model, s.len()))
        .collect();
    let longest = limits.iter().copied().max().unwrap_or(0);
    let mut state = model.start(sources)?;
    let mut tokens = vec![model.start_token(); sources.len()];
    let mut outputs = vec![Vec::new(); sources.len()];
    let mut done = vec![sources.is_empty(); sources.len()];
    for step in 0..longest {
        if done.iter().all(|&d| d) {
            break;
        }
        let log_p = model.step(&mut state, &tokens)?;
        for (i, row) in log_p.iter().enumerate() {
            if done[i] {
                continue;
            }
            let best = argmax(row);
            tokens[i] = best;
            if best == model.end_token() || step + 1 >= limits[i] {
                done[i] = true;
            }
            if best != model.end_token() {
                outputs[i].push(best);
            }
        }
    }
    Ok(outputs)
}

/// Beam search: per sentence the `beam` best prefixes by total log-probability, each
/// extended by every token at each step; a prefix that ends is set aside with its
/// length-normalised score, and a sentence is done once it has `beam` ended hypotheses (or
/// reaches its length limit, when its live prefixes end there). Returns each sentence's best
/// hypothesis without its end token.
pub fn beam_search<M: StepModel>(
    model: &M,
    sources: &[Vec<u32>],
    opts: &DecodeOptions,
) -> Result<Vec<Vec<u32>>> {
    let k = opts.beam.max(1);
    let end = model.end_token();
    // Every sentence's rows: k copies of it, the first alive and the others not yet.
    let rows: Vec<Vec<u32>> = sources
        .iter()
        .flat_map(|s| std::iter::repeat_n(s.clone(), k))
        .collect();
    let mut state = model.start(&rows)?;
    let mut tokens = vec![model.start_token(); rows.len()];
    let mut scores: Vec<f64> = (0..rows.len())
        .map(|r| if r % k == 0 { 0.0 } else { f64::NEG_INFINITY })
        .collect();
    let mut prefixes: Vec<Vec<u32>> = vec![Vec::new(); rows.len()];
    let mut ended: Vec<Vec<(f64, Vec<u32>)>> = vec![Vec::new(); sources.len()];
    let mut done = vec![false; sources.len()];
    let normalised = |score: f64, len: usize| score / (len.max(1) as f64).powf(opts.length_penalty);
    let limits: Vec<usize> = sources
        .iter()
        .map(|s| opts.max_len(model, s.len()))
        .collect();
    let longest = limits.iter().copied().max().unwrap_or(0);
    for step in 0..longest {
        if done.iter().all(|&d| d) {
            break;
        }
        let log_p = model.step(&mut state, &tokens)?;
        let (mut keep, mut next_tokens) = (Vec::with_capacity(rows.len()), Vec::new());
        let (mut next_scores, mut next_prefixes) = (Vec::new(), Vec::new());
        for i in 0..sources.len() {
            let first = i * k;
            let mut alive = 0;
            if !done[i] {
                // The 2k best extensions: enough for k live ones even if k of them end here.
                for (score, j, token) in
                    best_extensions(&scores[first..first + k], &log_p[first..first + k], 2 * k)
                {
                    let row = first + j;
                    if token == end {
                        if ended[i].len() < k {
                            let len = prefixes[row].len();
                            ended[i].push((normalised(score, len), prefixes[row].clone()));
                        }
                        continue;
                    }
                    if alive == k {
                        continue;
                    }
                    let mut prefix = prefixes[row].clone();
                    prefix.push(token);
                    keep.push(row as u32);
                    next_tokens.push(token);
                    next_scores.push(score);
                    next_prefixes.push(prefix);
                    alive += 1;
                }
                if step + 1 >= limits[i] {
                    // At the limit, the live prefixes end as they are.
                    for r in 0..alive {
                        let r = next_scores.len() - alive + r;
                        let len = next_prefixes[r].len();
                        ended[i].push((normalised(next_scores[r], len), next_prefixes[r].clone()));
                    }
                }
                done[i] = ended[i].len() >= k || step + 1 >= limits[i];
            }
            // A done sentence keeps k rows (dead ones), so every sentence keeps its place.
            for _ in alive..k {
                keep.push(first as u32);
                next_tokens.push(end);
                next_scores.push(f64::NEG_INFINITY);
                next_prefixes.push(Vec::new());
            }
            if done[i] && alive > 0 {
                for r in next_scores.len() - k..next_scores.len() {
                    next_scores[r] = f64::NEG_INFINITY;
                }
            }
        }
        model.select(&mut state, &keep)?;
        (tokens, scores, prefixes) = (next_tokens, next_scores, next_prefixes);
    }
    Ok(ended
        .into_iter()
        .map(|hyps| {
            hyps.into_iter()
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, tokens)| tokens)
                .unwrap_or_default()
        })
        .collect())
}

/// The `n` best (score, beam, token) of extending each live beam by each token, best first.
fn best_extensions(scores: &[f64], log_p: &[Vec<f32>], n: usize) -> Vec<(f64, usize, u32)> {
    let mut all: Vec<(f64, usize, u32)> = Vec::new();
    for (j, (&score, row)) in scores.iter().zip(log_p).enumerate() {
        if score == f64::NEG_INFINITY {
            continue;
        }
        // A token of probability 0 is no extension (log 0 = -inf).
        let finite = row.iter().enumerate().filter(|(_, lp)| lp.is_finite());
        all.extend(finite.map(|(t, &lp)| (score + lp as f64, j, t as u32)));
    }
    let n = n.min(all.len());
    if n < all.len() {
        all.select_nth_unstable_by(n, |a, b| b.0.total_cmp(&a.0));
        all.truncate(n);
    }
    // Ties go to the lower beam, then the lower token, so results do not depend on the sort.
    all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    all
}

fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (t, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = t;
        }
    }
    best as u32
}

/// The translator decodes with its key/value cache: each step runs one token per row.
impl StepModel for Seq2Seq {
    type State = DecoderState;

    fn start(&self, sources: &[Vec<u32>]) -> Result<DecoderState> {
        let (ids, mask) = pad_ids(sources, self.config.pad_token_id)?;
        Seq2Seq::start(self, &ids, &mask)
    }

    fn step(&self, state: &mut DecoderState, tokens: &[u32]) -> Result<Vec<Vec<f32>>> {
        let tokens = Tensor::new(tokens, &Device::Cpu)?;
        log_probs(&Seq2Seq::step(self, state, &tokens)?)
    }

    fn select(&self, state: &mut DecoderState, rows: &[u32]) -> Result<()> {
        state.select(rows)
    }

    fn start_token(&self) -> u32 {
        self.config.decoder_start_token_id
    }

    fn end_token(&self) -> u32 {
        self.config.eos_token_id
    }

    fn longest_output(&self) -> usize {
        self.config.max_positions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Markov chain over tokens 0 (start), 1 (end), 2 (A), 3 (B), 4 (C): the next token's
    /// probabilities depend on the last token only. Greedy takes A (0.6) then C (0.36) then
    /// the end: 0.216. The best sequence is B then the end: 0.4 × 0.9 = 0.36.
    struct Chain;

    fn chain_probs(last: u32) -> [f32; 5] {
        match last {
            0 => [0.0, 0.0, 0.6, 0.4, 0.0],
            2 => [0.0, 0.30, 0.0, 0.34, 0.36],
            3 => [0.0, 0.9, 0.05, 0.0, 0.05],
            _ => [0.0, 1.0, 0.0, 0.0, 0.0],
        }
    }

    impl StepModel for Chain {
        type State = usize;
        fn start(&self, sources: &[Vec<u32>]) -> Result<usize> {
            Ok(sources.len())
        }
        fn step(&self, _: &mut usize, tokens: &[u32]) -> Result<Vec<Vec<f32>>> {
            Ok(tokens
                .iter()
                .map(|&t| chain_probs(t).iter().map(|p| p.ln()).collect())
                .collect())
        }
        fn select(&self, state: &mut usize, rows: &[u32]) -> Result<()> {
            *state = rows.len();
            Ok(())
        }
        fn start_token(&self) -> u32 {
            0
        }
        fn end_token(&self) -> u32 {
            1
        }
    }

    fn opts(beam: usize) -> DecodeOptions {
        DecodeOptions {
            beam,
            length_penalty: 0.0,
            max_len_a: 0.0,
            max_len_b: 6,
        }
    }

    #[test]
    fn beam_search_finds_the_best_sequence_that_greedy_misses() {
        let sources = vec![vec![7], vec![8, 9]];
        assert_eq!(
            greedy(&Chain, &sources, &opts(1)).unwrap(),
            [vec![2, 4], vec![2, 4]]
        );
        assert_eq!(
            beam_search(&Chain, &sources, &opts(1)).unwrap(),
            [vec![2, 4], vec![2, 4]]
        );
        assert_eq!(
            beam_search(&Chain, &sources, &opts(2)).unwrap(),
            [vec![3], vec![3]]
        );
        assert_eq!(
            beam_search(&Chain, &sources, &opts(5)).unwrap(),
            [vec![3], vec![3]]
        );
    }

    #[test]
    fn a_length_limit_ends_live_hypotheses_where_they_are() {
        let mut o = opts(2);
        o.max_len_b = 1;
        // One token only: A (0.6) beats B (0.4) when neither may end.
        assert_eq!(beam_search(&Chain, &[vec![1]], &o).unwrap(), [vec![2]]);
        assert_eq!(greedy(&Chain, &[vec![1]], &o).unwrap(), [vec![2]]);
    }

    #[test]
    fn a_length_penalty_favours_longer_hypotheses() {
        // log(0.36) = -1.02 over 1 token; A C: log(0.216) = -1.53 over 2 tokens. With
        // penalty 1 the scores are -1.02 and -0.77: the longer one wins.
        let mut o = opts(3);
        o.length_penalty = 1.0;
        assert_eq!(beam_search(&Chain, &[vec![1]], &o).unwrap(), [vec![2, 4]]);
    }
}
