//! Outlier probes reduced on the GPU (shaders/probe.wgsl) against the same statistics computed on
//! the CPU (src/analysis/outliers.rs) from the very tensors the GPU summarized: exact for maxima,
//! argmaxima, top entries and the histogram (so the median's bin), the mean within 1e-5 relative
//! (per-token f32 sums on the GPU, one f64 sum on the CPU). On the default model the residual
//! stream's summaries are checked against the hidden states captured in the same step.
use crate::gpu_common;

use gpu_common::*;
use quantscope::analysis::outliers::{activation_stats, lower_median, top_entries};
use quantscope::gpu::forward::{Capture, GpuModel, ProbePoint};
use quantscope::gpu::kernels::probe::{bin_of, probe, probe_words, ProbeSummary, HISTOGRAM_BINS, ROW_TOP};

fn check_summary(what: &str, x: &[f32], channels: usize, got: &ProbeSummary) {
    let stats = activation_stats(x, channels);
    assert_eq!(got.max_abs.to_bits(), stats.max_abs.to_bits(), "{what}: max");
    assert_eq!(got.channel_max_abs, stats.channel_max_abs, "{what}: channel max");
    assert_eq!(got.channel_argmax_token, stats.channel_argmax_token, "{what}: channel argmax");
    assert_eq!(got.token_max_abs, stats.token_max_abs, "{what}: token max");
    assert_eq!(got.token_argmax_channel, stats.token_argmax_channel, "{what}: token argmax");
    let k = ROW_TOP.min(x.len());
    assert_eq!(got.top, top_entries(x, channels, k), "{what}: top entries");
    let mut histogram = vec![0u32; HISTOGRAM_BINS];
    x.iter().for_each(|v| histogram[bin_of(v.abs())] += 1);
    assert_eq!(got.histogram, histogram, "{what}: histogram");
    let median = lower_median(x.iter().map(|v| v.abs()).collect());
    assert_eq!(got.median_bin, bin_of(median), "{what}: median {median} is not in bin {}", got.median_bin);
    let rel = (got.mean_abs - stats.mean_abs as f64).abs() / (stats.mean_abs as f64).max(f64::MIN_POSITIVE);
    assert!(rel < 1e-5, "{what}: mean {} vs {}", got.mean_abs, stats.mean_abs);
}

#[test]
fn probes_of_random_tensors_with_planted_outliers_and_ties() {
    let mut rng = Rng(0xB0B);
    for (tokens, channels) in [(1, 1), (3, 5), (17, 100), (64, 576), (5, 1536)] {
        let mut x = rng.vec(tokens * channels, -1.0, 1.0);
        // A planted outlier, an exact tie with it elsewhere, zeros and a tiny value.
        x[(tokens / 2) * channels + channels / 3] = -700.0;
        if tokens * channels > 10 {
            x[(tokens - 1) * channels + channels - 1] = 700.0;
            x[1] = 0.0;
            x[2] = 1e-30;
        }
        let xb = ctx().upload_f32("x", &x).unwrap();
        let at = 7u64; // not at the start of the buffer
        let words = probe_words(tokens as u32, channels as u32);
        let out = ctx().storage("out", (at + words) * 4).unwrap();
        let mut enc = ctx().encoder();
        probe(ctx(), &mut enc, &xb, tokens as u32, channels as u32, &out, at).unwrap();
        ctx().submit(enc);
        let got = pollster::block_on(ctx().read_u32(&out, (at + words) as usize, "probe")).unwrap();
        assert!(got[..at as usize].iter().all(|&w| w == 0), "wrote before its offset");
        let summary = ProbeSummary::decode(&got[at as usize..], tokens, channels);
        check_summary(&format!("random {tokens}×{channels}"), &x, channels, &summary);
    }
}

#[test]
fn the_default_models_residual_stream_probes_match_its_hidden_states() {
    let model = default_model();
    let gpu = GpuModel::upload(ctx(), model, &mut |_| {}).unwrap();
    let tokens = model.tokenizer.encode("The capital of France is Paris. It is known for").unwrap();
    let mut cache = gpu.new_cache(ctx(), tokens.len() as u32).unwrap();
    let capture = Capture { hidden_states: true, probes: true, ..Default::default() };
    let out = pollster::block_on(gpu.step(ctx(), &mut cache, &tokens, &capture)).unwrap();
    let c = &model.config;
    assert_eq!(out.probes.len(), 1 + 8 * c.n_layers);
    let residual: Vec<_> =
        out.probes.iter().filter(|p| matches!(p.point, ProbePoint::Embeddings | ProbePoint::Residual)).collect();
    assert_eq!(residual.len(), c.n_layers + 1);
    for (i, (p, h)) in residual.iter().zip(&out.hidden_states).enumerate() {
        check_summary(&format!("hidden state {i}"), h, c.d_model, &p.summary);
    }
    // Every other point is internally consistent and has its width.
    for p in &out.probes {
        let s = &p.summary;
        let width = match p.point {
            ProbePoint::OInput => c.q_dim(),
            ProbePoint::DownInput => c.d_ff,
            ProbePoint::Keys | ProbePoint::Values => c.kv_dim(),
            _ => c.d_model,
        };
        assert_eq!((s.tokens, s.channels), (tokens.len(), width), "{:?} {}", p.point, p.layer);
        assert_eq!(s.histogram.iter().map(|&n| n as usize).sum::<usize>(), s.tokens * s.channels);
        assert_eq!(s.max_abs, s.channel_max_abs.iter().copied().fold(0.0, f32::max));
        assert_eq!(s.top[0].value.abs(), s.max_abs);
    }
    let last = &residual[c.n_layers].summary;
    println!("final residual: max {} at token {} channel {}", last.max_abs, last.top[0].token, last.top[0].channel);
}

#[test]
fn attention_summaries_match_the_probabilities_they_reduce() {
    use quantscope::analysis::outliers::{key_attention, sink_scores};
    let model = default_model();
    let c = &model.config;
    let gpu = GpuModel::upload(ctx(), model, &mut |_| {}).unwrap();
    let tokens = model.tokenizer.encode("Summer is warm. Winter is cold.\n").unwrap();
    let n = tokens.len();
    let mut cache = gpu.new_cache(ctx(), n as u32 + 1).unwrap();
    let all_layers: Vec<usize> = (0..c.n_layers).collect();
    let capture = Capture { probes: true, attention_layers: all_layers.clone(), ..Default::default() };
    let out = pollster::block_on(gpu.step(ctx(), &mut cache, &tokens, &capture)).unwrap();
    assert_eq!(out.attention.len(), c.n_layers);
    for (summary, (layer, probs)) in out.attention.iter().zip(&out.attention_probs) {
        assert_eq!(summary.layer, *layer);
        // f32 sums on the GPU, f64 on the CPU, of at most a few hundred probabilities.
        assert_close(
            &format!("layer {layer} sinks"),
            &summary.sink_scores,
            &sink_scores(probs, c.n_heads, n),
            1e-5,
            0.0,
        );
        assert_close(
            &format!("layer {layer} keys"),
            &summary.key_attention,
            &key_attention(probs, c.n_heads, n),
            1e-4,
            0.0,
        );
    }
    // A decode step: one query at position n, whose attention to key 0 is its sink score.
    let out = pollster::block_on(gpu.step(ctx(), &mut cache, &[tokens[1]], &capture)).unwrap();
    for (summary, (_, probs)) in out.attention.iter().zip(&out.attention_probs) {
        let to_key0: Vec<f32> = (0..c.n_heads).map(|h| probs[h * (n + 1)]).collect();
        assert_eq!(summary.sink_scores, to_key0);
        assert_eq!(summary.key_attention.len(), n + 1);
    }
}

#[test]
fn one_whole_tensor_comes_back_on_request_and_matches_its_probe() {
    let model = default_model();
    let c = &model.config;
    let gpu = GpuModel::upload(ctx(), model, &mut |_| {}).unwrap();
    let tokens = model.tokenizer.encode("The capital of France is").unwrap();
    for (layer, point, width) in [
        (12, ProbePoint::DownInput, c.d_ff),
        (0, ProbePoint::Embeddings, c.d_model),
        (29, ProbePoint::Keys, c.kv_dim()),
    ] {
        let mut cache = gpu.new_cache(ctx(), tokens.len() as u32).unwrap();
        let capture = Capture { probes: true, tensor: Some((layer, point)), ..Default::default() };
        let out = pollster::block_on(gpu.step(ctx(), &mut cache, &tokens, &capture)).unwrap();
        let (x, got_width) = out.tensor.expect("the tensor asked for");
        assert_eq!((x.len(), got_width), (tokens.len() * width, width));
        let p = out.probes.iter().find(|p| p.layer == layer && p.point == point).unwrap();
        check_summary(&format!("{point:?} of layer {layer}"), &x, width, &p.summary);
    }
    // Without probes the tensor still comes back alone; a point that does not exist is an error.
    let mut cache = gpu.new_cache(ctx(), tokens.len() as u32).unwrap();
    let capture = Capture { tensor: Some((3, ProbePoint::Residual)), ..Default::default() };
    let out = pollster::block_on(gpu.step(ctx(), &mut cache, &tokens, &capture)).unwrap();
    assert!(out.probes.is_empty() && out.tensor.is_some());
    let capture = Capture { tensor: Some((30, ProbePoint::Residual)), ..Default::default() };
    let mut cache = gpu.new_cache(ctx(), tokens.len() as u32).unwrap();
    let err = pollster::block_on(gpu.step(ctx(), &mut cache, &tokens, &capture)).unwrap_err().to_string();
    assert!(err.contains("no Residual tensor of layer 30"), "{err}");
}
