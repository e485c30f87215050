//! Shared by the GPU kernel tests (lavapipe in CI): one context per test binary, random data
//! that is never all zeros, poisoned outputs, and error reports that show the first mismatches.
#![allow(dead_code)]

use std::sync::OnceLock;

use quantscope::gpu::GpuContext;

/// One device for all tests of a binary. A missing adapter fails the test: scripts/setup
/// installs lavapipe (mesa-vulkan-drivers), so there is always one.
pub fn ctx() -> &'static GpuContext {
    static CTX: OnceLock<GpuContext> = OnceLock::new();
    CTX.get_or_init(|| {
        GpuContext::new_blocking()
            .unwrap_or_else(|e| panic!("{e}: run scripts/setup (installs mesa-vulkan-drivers for lavapipe)"))
    })
}

/// Deterministic values in [lo, hi): xorshift64*, no rand crate needed.
pub struct Rng(pub u64);
impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32)
    }
    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next_u64() >> 56) as u8).collect()
    }
}

/// A storage buffer filled with NaN, so an element a kernel forgot to write fails the comparison.
pub fn poisoned(label: &str, n: usize) -> wgpu::Buffer {
    ctx().upload_f32(label, &vec![f32::NAN; n]).unwrap()
}

pub fn read(buffer: &wgpu::Buffer, n: usize) -> Vec<f32> {
    pollster::block_on(ctx().read_f32(buffer, n, "test output")).unwrap()
}

/// Asserts `gpu` ≈ `cpu` elementwise: |g − c| ≤ abs + rel·|c|; on failure lists the first mismatches.
pub fn assert_close(what: &str, gpu: &[f32], cpu: &[f32], abs: f32, rel: f32) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: lengths");
    let bad: Vec<String> = gpu
        .iter()
        .zip(cpu)
        .enumerate()
        .filter(|(_, (g, c))| {
            // Written as "not within" so that NaN (a poisoned, unwritten output) fails.
            let within = (*g - *c).abs() <= abs + rel * c.abs();
            !within
        })
        .take(8)
        .map(|(i, (g, c))| format!("[{i}] gpu {g} cpu {c}"))
        .collect();
    assert!(bad.is_empty(), "{what}: mismatches (first 8): {}", bad.join(", "));
}

/// ‖gpu − cpu‖₂ / ‖cpu‖₂ in f64.
pub fn relative_l2(gpu: &[f32], cpu: &[f32]) -> f64 {
    let num: f64 = gpu.iter().zip(cpu).map(|(&g, &c)| (g as f64 - c as f64).powi(2)).sum();
    let den: f64 = cpu.iter().map(|&c| (c as f64).powi(2)).sum();
    (num / den).sqrt()
}
