//! The user directory's text normalisation (lowercase, then NFKC), applied to
//! every indexed display name and every search term, on names of the kinds
//! the workload generator writes: ASCII, mixed case, precomposed and
//! decomposed accents, ligatures and full-width forms, non-Latin scripts,
//! emoji, and a very long name.
//!
//! `cargo bench -p updraft-benches --bench text`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use updraft_homeserver::text::{normalise, parse_words};

fn names() -> Vec<(&'static str, String)> {
    vec![
        ("ascii", "alice.smith".to_owned()),
        ("mixed_case", "Alice McSmith-Jones".to_owned()),
        ("precomposed", "Zoë Brontë Ångström".to_owned()),
        (
            "decomposed",
            "Zoe\u{308} Bronte\u{308} A\u{30a}ngstro\u{308}m".to_owned(),
        ),
        ("ligature_fullwidth", "ﬁnn ＭＵＬＬＥＲ ﬂora".to_owned()),
        ("cyrillic_greek", "Дмитрий Ωμέγα".to_owned()),
        ("cjk", "山田太郎 김민준".to_owned()),
        ("emoji", "Ada 🚀✨ Lovelace 👩‍💻".to_owned()),
        ("long_255", "Bartholomew ".repeat(21) + "End"),
    ]
}

fn bench_text(c: &mut Criterion) {
    let mut group = c.benchmark_group("normalise");
    for (kind, name) in names() {
        group.throughput(Throughput::Bytes(name.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(kind), &name, |b, n| {
            b.iter(|| normalise(std::hint::black_box(n)))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("search_term_words");
    for (kind, name) in names() {
        let normalised = normalise(&name);
        group.bench_with_input(BenchmarkId::from_parameter(kind), &normalised, |b, n| {
            b.iter(|| parse_words(std::hint::black_box(n)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_text);
criterion_main!(benches);
