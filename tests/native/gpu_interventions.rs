//! Interventions in the GPU forward against the CPU reference's (model::intervene through the
//! forward hook): zero-massive, mean-massive, drop-sink and clip:P on the default model, and the
//! GPU's exact select (the radix select behind the median and the percentiles) against sorting.
//!
//! Tolerance: the logits' relative L2 ≤ 1e-4, the plain forward's bound (f32 on both sides in
//! different orders; measured 1e-6 to 1e-5); the intervention must also change the logits by far
//! more than that, so the comparison says something.
use crate::gpu_common;

use gpu_common::*;
use quantscope::gpu::forward::{Capture, GpuModel};
use quantscope::gpu::kernels::intervene::{select_abs, GpuIntervention};
use quantscope::model::intervene::{Intervener, Intervention};
use quantscope::model::reference::{forward, forward_with, ForwardOptions};
use quantscope::model::window::{eval_tokens, EvalOptions, EVAL_TEXT};

#[test]
fn the_gpu_select_finds_the_exact_value_of_every_rank_asked() {
    let mut rng = Rng(0x5E1EC7);
    for n in [1usize, 7, 1000, 30_000] {
        let mut x = rng.vec(n, -3.0, 3.0);
        if n > 10 {
            // Ties, zeros (of both signs) and one huge value.
            x[3] = x[5];
            x[4] = -x[5];
            x[6] = 0.0;
            x[7] = -0.0;
            x[8] = 2e4;
        }
        let mut sorted: Vec<f32> = x.iter().map(|v| v.abs()).collect();
        sorted.sort_by(f32::total_cmp);
        let xb = ctx().upload_f32("x", &x).unwrap();
        for rank in [0, n / 3, (n - 1) / 2, n - 1] {
            let state = ctx().storage("state", 260 * 4).unwrap();
            let mut enc = ctx().encoder();
            select_abs(ctx(), &mut enc, &xb, n as u32, rank as u32, &state).unwrap();
            ctx().submit(enc);
            let got = pollster::block_on(ctx().read_u32(&state, 1, "state")).unwrap()[0];
            assert_eq!(f32::from_bits(got), sorted[rank], "n {n} rank {rank}");
        }
    }
}

#[test]
fn every_intervention_on_the_gpu_matches_the_cpu_reference() {
    let model = default_model();
    let gpu = GpuModel::upload(ctx(), model, &mut |_| {}).unwrap();
    let options = EvalOptions { max_tokens: Some(160), window: 128, skip: 0 };
    let text = eval_tokens(model, EVAL_TEXT, &options).unwrap();
    let (tokens, calibration) = (&text[..32], &text[32..]);
    let plain = forward(model, tokens, ForwardOptions::default()).unwrap().logits;
    for intervention in
        [Intervention::ZeroMassive, Intervention::MeanMassive, Intervention::DropSink, Intervention::Clip(99.9)]
    {
        let mut intervener = Intervener::new(model, intervention, calibration, &options).unwrap();
        let gpu_intervention =
            GpuIntervention::new(ctx(), &intervener, model.config.n_layers, model.config.d_model).unwrap();
        let cpu = forward_with(model, tokens, ForwardOptions::default(), &mut intervener).unwrap().logits;
        let mut cache = gpu.new_cache(ctx(), tokens.len() as u32).unwrap();
        let capture = Capture { intervention: Some(gpu_intervention), ..Default::default() };
        let got = pollster::block_on(gpu.step(ctx(), &mut cache, tokens, &capture)).unwrap().logits;
        let (err, effect) = (relative_l2(&got, &cpu), relative_l2(&cpu, &plain));
        println!("{intervention}: GPU vs CPU {err:.2e}, effect on the logits {effect:.2e}");
        assert!(err <= 1e-4, "{intervention}: relative L2 {err:.2e}");
        assert!(effect > 1e-2, "{intervention} changed nothing ({effect:.2e})");
    }
}
