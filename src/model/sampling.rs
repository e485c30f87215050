//! Picking the next token from the top candidates: greedy, or temperature + top-p (nucleus)
//! sampling with a seeded PRNG, so a run is reproducible from its seed on every backend.

/// `temperature` 0 (or below, or NaN) is greedy; `top_p` in (0, 1] keeps the smallest prefix of
/// the candidates whose probability reaches it (≥ 1 keeps them all).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingParams {
    pub temperature: f32,
    pub top_p: f32,
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams { temperature: 0.0, top_p: 1.0, seed: 0 }
    }
}

/// A sampler with its own random state: the same params and the same candidates give the same
/// sequence of picks.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplingParams,
    state: u64,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Self {
        Sampler { params, state: params.seed }
    }

    pub fn params(&self) -> SamplingParams {
        self.params
    }

    /// Whether [`Sampler::pick`] takes the first candidate (temperature 0, below, or NaN).
    pub fn is_greedy(&self) -> bool {
        let t = self.params.temperature;
        t.is_nan() || t <= 0.0
    }

    /// splitmix64: a full-period 64-bit generator, good enough for sampling and tiny.
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Picks a token from candidates sorted by logit descending (`ids[i]` has `logits[i]`).
    /// Greedy takes the first; otherwise softmax(logit / temperature) over the candidates, keep
    /// the smallest prefix whose cumulative probability reaches `top_p`, and draw from it
    /// (renormalized) with the seeded PRNG. Greedy picks consume no random numbers.
    ///
    /// Panics if there are no candidates or `ids` and `logits` differ in length.
    pub fn pick(&mut self, ids: &[u32], logits: &[f32]) -> u32 {
        assert!(!ids.is_empty(), "Sampler::pick: no candidates");
        assert_eq!(ids.len(), logits.len(), "Sampler::pick: ids and logits differ in length");
        if self.is_greedy() {
            return ids[0];
        }
        let t = self.params.temperature;
        // f64 softmax relative to the first (largest) logit: weights in (0, 1].
        let max = logits[0] as f64;
        let weights: Vec<f64> = logits.iter().map(|&l| ((l as f64 - max) / t as f64).exp()).collect();
        let total: f64 = weights.iter().sum();
        let top_p = if self.params.top_p.is_nan() { 1.0 } else { self.params.top_p as f64 };
        let mut kept = 0;
        let mut cumulative = 0.0;
        for w in &weights {
            kept += 1;
            cumulative += w;
            if cumulative >= top_p * total {
                break;
            }
        }
        let mut target = self.next_f64() * cumulative;
        for (i, w) in weights[..kept].iter().enumerate() {
            if target < *w {
                return ids[i];
            }
            target -= w;
        }
        ids[kept - 1] // rounding left a sliver past the last weight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampler(temperature: f32, top_p: f32, seed: u64) -> Sampler {
        Sampler::new(SamplingParams { temperature, top_p, seed })
    }

    const IDS: [u32; 5] = [40, 7, 300, 2, 99];
    const LOGITS: [f32; 5] = [3.0, 2.5, 1.0, 0.0, -2.0];

    #[test]
    fn greedy_takes_the_first_candidate() {
        for t in [0.0, -1.0, f32::NAN] {
            let mut s = sampler(t, 0.9, 5);
            for _ in 0..10 {
                assert_eq!(s.pick(&IDS, &LOGITS), 40);
            }
        }
    }

    #[test]
    fn same_seed_same_sequence_other_seed_differs() {
        let run = |seed| {
            let mut s = sampler(1.0, 1.0, seed);
            (0..64).map(|_| s.pick(&IDS, &LOGITS)).collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }

    #[test]
    fn tiny_top_p_is_greedy() {
        let mut s = sampler(2.0, 1e-6, 3);
        for _ in 0..100 {
            assert_eq!(s.pick(&IDS, &LOGITS), 40);
        }
    }

    #[test]
    fn top_p_keeps_the_smallest_prefix() {
        // Probabilities at T=1: 0.5267, 0.3195, 0.0713, 0.0262, 0.0036 (approximately).
        // top_p 0.8 needs the first two (0.846), never the rest.
        let mut s = sampler(1.0, 0.8, 9);
        for _ in 0..2000 {
            let id = s.pick(&IDS, &LOGITS);
            assert!(id == 40 || id == 7, "{id}");
        }
    }

    #[test]
    fn frequencies_follow_the_softmax() {
        let n = 200_000;
        for t in [0.5f32, 1.0, 2.0] {
            let mut s = sampler(t, 1.0, 42);
            let mut counts = [0usize; 5];
            for _ in 0..n {
                let id = s.pick(&IDS, &LOGITS);
                counts[IDS.iter().position(|&i| i == id).unwrap()] += 1;
            }
            let w: Vec<f64> = LOGITS.iter().map(|&l| ((l - LOGITS[0]) as f64 / t as f64).exp()).collect();
            let total: f64 = w.iter().sum();
            for i in 0..5 {
                let p = w[i] / total;
                let freq = counts[i] as f64 / n as f64;
                // 5 standard deviations of a binomial frequency: a false alarm is ~1e-6 likely.
                let tolerance = 5.0 * (p * (1.0 - p) / n as f64).sqrt() + 1e-9;
                assert!((freq - p).abs() <= tolerance, "T={t} candidate {i}: frequency {freq}, p {p}");
            }
        }
    }

    #[test]
    fn a_single_candidate_is_always_picked() {
        let mut s = sampler(1.0, 0.5, 0);
        assert_eq!(s.pick(&[17], &[-5.0]), 17);
    }
}
