//! A tiny baseline-JPEG writer for images made of flat 8×8 blocks.
//!
//! `image`'s JPEG encoder is generic over its writer, so it is instantiated in this (unoptimised)
//! test crate and needs about two seconds for one 4K image. A flat block has only a DC
//! coefficient, which makes encoding a few bit writes per block: fast at any optimisation level,
//! and still a standard JFIF file (three components, no subsampling) that any decoder reads.

/// Quantiser for every coefficient; 8 maps a block's DC coefficient to exactly `mean - 128`.
const QUANT: u8 = 8;
/// DC categories 0..=11, all with 4-bit codes (code == category): a valid canonical table.
const DC_SYMBOLS: u8 = 12;

/// Encodes a `width`×`height` image whose 8×8 block at (`bx`, `by`) has the RGB colour
/// `block(bx, by)`.
pub fn encode_blocks(width: u32, height: u32, block: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
    let (w, h) = (dimension(width), dimension(height));
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(&[0xFF, 0xD8]); // SOI
    segment(
        &mut out,
        0xE0,
        b"JFIF\0\x01\x01\x00\x00\x01\x00\x01\x00\x00",
    );
    let mut dqt = vec![0x00];
    dqt.extend_from_slice(&[QUANT; 64]);
    segment(&mut out, 0xDB, &dqt);
    let mut sof = vec![8];
    sof.extend_from_slice(&h.to_be_bytes());
    sof.extend_from_slice(&w.to_be_bytes());
    sof.extend_from_slice(&[3, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0]);
    segment(&mut out, 0xC0, &sof);
    // DC table 0: twelve 4-bit codes. AC table 0: only end-of-block, as the 1-bit code "0".
    let mut dht = vec![0x00];
    dht.extend((1..=16).map(|len| if len == 4 { DC_SYMBOLS } else { 0 }));
    dht.extend(0..DC_SYMBOLS);
    dht.push(0x10);
    dht.extend((1..=16).map(|len| u8::from(len == 1)));
    dht.push(0x00);
    segment(&mut out, 0xC4, &dht);
    segment(&mut out, 0xDA, &[3, 1, 0x00, 2, 0x00, 3, 0x00, 0, 63, 0]);

    let mut bits = BitWriter { out, acc: 0, n: 0 };
    let mut predictors = [0i32; 3];
    for by in 0..height.div_ceil(8) {
        for bx in 0..width.div_ceil(8) {
            for (predictor, dc) in predictors.iter_mut().zip(ycbcr(block(bx, by))) {
                let diff = dc - *predictor;
                *predictor = dc;
                let category = 32 - diff.unsigned_abs().leading_zeros();
                bits.put(category, 4);
                // Negative values are sent as (diff - 1) in `category` bits (JPEG's one's complement).
                let magnitude = if diff < 0 { diff - 1 } else { diff };
                bits.put(magnitude as u32 & ((1 << category) - 1), category);
                bits.put(0, 1); // end of block: every AC coefficient is zero
            }
        }
    }
    let mut out = bits.finish();
    out.extend_from_slice(&[0xFF, 0xD9]); // EOI
    out
}

fn dimension(value: u32) -> u16 {
    u16::try_from(value).expect("JPEG dimensions are limited to 65535")
}

fn segment(out: &mut Vec<u8>, marker: u8, payload: &[u8]) {
    let len = u16::try_from(payload.len() + 2).expect("segment payloads are small");
    out.extend_from_slice(&[0xFF, marker]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
}

/// Quantised DC coefficients (`value - 128`) of a flat block, per JFIF's YCbCr conversion.
fn ycbcr([r, g, b]: [u8; 3]) -> [i32; 3] {
    let (r, g, b) = (f32::from(r), f32::from(g), f32::from(b));
    let y = 0.299 * r + 0.587 * g + 0.114 * b;
    let cb = 128.0 - 0.168_736 * r - 0.331_264 * g + 0.5 * b;
    let cr = 128.0 + 0.5 * r - 0.418_688 * g - 0.081_312 * b;
    [y, cb, cr].map(|v| v.round().clamp(0.0, 255.0) as i32 - 128)
}

struct BitWriter {
    out: Vec<u8>,
    acc: u32,
    n: u32,
}

impl BitWriter {
    fn put(&mut self, value: u32, len: u32) {
        for i in (0..len).rev() {
            self.acc = (self.acc << 1) | ((value >> i) & 1);
            self.n += 1;
            if self.n == 8 {
                self.push_byte();
            }
        }
    }

    fn push_byte(&mut self) {
        let byte = self.acc as u8;
        self.out.push(byte);
        if byte == 0xFF {
            self.out.push(0x00); // byte stuffing inside entropy-coded data
        }
        self.acc = 0;
        self.n = 0;
    }

    /// Pads the last byte with 1-bits, as the standard requires.
    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            let pad = 8 - self.n;
            self.put((1 << pad) - 1, pad);
        }
        self.out
    }
}
