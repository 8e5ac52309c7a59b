//! Batches: token ids padded to the longest sequence of the batch, and length-sorted order.

use candle_core::{Device, Tensor};

use super::tokenizer::Encoded;
use crate::error::{Error, Result};
use crate::model::EncoderInput;

/// Pads `items` to the longest among them and builds the encoder's input tensors.
pub fn pad_batch(items: &[&Encoded], pad_id: u32) -> Result<EncoderInput> {
    let device = &Device::Cpu;
    let seq = items.iter().map(|e| e.ids.len()).max().unwrap_or(0);
    if items.is_empty() || seq == 0 {
        return Err(Error::Invalid("cannot build an empty batch".into()));
    }
    let n = items.len() * seq;
    let (mut ids, mut types, mut mask) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for e in items {
        let pad = seq - e.ids.len();
        ids.extend(
            e.ids
                .iter()
                .copied()
                .chain(std::iter::repeat_n(pad_id, pad)),
        );
        types.extend(
            e.type_ids
                .iter()
                .copied()
                .chain(std::iter::repeat_n(0, pad)),
        );
        mask.extend(std::iter::repeat_n(1f32, e.ids.len()).chain(std::iter::repeat_n(0f32, pad)));
    }
    let shape = (items.len(), seq);
    Ok(EncoderInput {
        input_ids: Tensor::from_vec(ids, shape, device)?,
        token_type_ids: Tensor::from_vec(types, shape, device)?,
        attention_mask: Tensor::from_vec(mask, shape, device)?,
        word_noise: None,
        target_ids: None,
    })
}

/// Groups indices `0..lengths.len()` into batches of similar length (sorted, longest first),
/// so that little work is spent on padding. Every index appears exactly once.
pub fn length_sorted_batches(lengths: &[usize], batch_size: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
    order
        .chunks(batch_size.max(1))
        .map(<[usize]>::to_vec)
        .collect()
}

/// Training batches for one epoch: examples shuffled (reproducibly from `seed`), then sorted by
/// length within pools of 50 batches so each batch pads little, then the batches shuffled so
/// that lengths do not drift through the epoch.
pub fn bucketed_batches(lengths: &[usize], batch_size: usize, seed: u64) -> Vec<Vec<usize>> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.shuffle(&mut rng);
    let batch_size = batch_size.max(1);
    let mut batches = Vec::new();
    for pool in order.chunks_mut(batch_size * 50) {
        pool.sort_by_key(|&i| lengths[i]);
        batches.extend(pool.chunks(batch_size).map(<[usize]>::to_vec));
    }
    batches.shuffle(&mut rng);
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(ids: &[u32]) -> Encoded {
        Encoded {
            ids: ids.to_vec(),
            type_ids: vec![0; ids.len()],
        }
    }

    #[test]
    fn pads_to_longest_with_mask() {
        let (a, b) = (enc(&[2, 5, 3]), enc(&[2, 3]));
        let batch = pad_batch(&[&a, &b], 0).unwrap();
        assert_eq!(
            batch.input_ids.to_vec2::<u32>().unwrap(),
            vec![vec![2, 5, 3], vec![2, 3, 0]]
        );
        assert_eq!(
            batch.attention_mask.to_vec2::<f32>().unwrap(),
            vec![vec![1., 1., 1.], vec![1., 1., 0.]]
        );
        assert!(pad_batch(&[], 0).is_err());
    }

    #[test]
    fn bucketed_batches_are_reproducible_and_cover_everything() {
        let lengths: Vec<usize> = (0..1000).map(|i| (i * 37) % 61 + 2).collect();
        let a = bucketed_batches(&lengths, 16, 7);
        assert_eq!(a, bucketed_batches(&lengths, 16, 7));
        assert_ne!(a, bucketed_batches(&lengths, 16, 8));
        let mut all: Vec<usize> = a.iter().flatten().copied().collect();
        all.sort();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        // Sorted within pools: a batch spans a narrow range of lengths.
        let spread = |b: &Vec<usize>| {
            b.iter().map(|&i| lengths[i]).max().unwrap()
                - b.iter().map(|&i| lengths[i]).min().unwrap()
        };
        assert!(a.iter().filter(|b| b.len() == 16).all(|b| spread(b) <= 6));
    }

    #[test]
    fn batches_cover_every_index_once() {
        let batches = length_sorted_batches(&[3, 9, 1, 7, 5], 2);
        assert_eq!(batches, vec![vec![1, 3], vec![4, 0], vec![2]]);
    }
}
