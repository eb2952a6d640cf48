//! Retrieval without a server: ingest a real mixed folder (photographs and notes) with
//! the shipped models into a real collection on disk, then ask it questions across
//! modalities. Needs the models and test photos that `make test` installs
//! (`.ci/models.sh --testdata`).

use agentdb_engine::{CollectionOptions, CollectionSpec, Database, KeywordSpec};
use agentdb_retrieval::config::ModelsConfig;
use agentdb_retrieval::query::run;
use agentdb_retrieval::{
    ingest_file, CrossQuery, Encoders, Error, IngestLimits, IngestStatus, KeywordQuery, Observer, QueryInput, Retrieval,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

fn photos() -> PathBuf {
    let d = agentdb_models::registry::testdata_dir().join("photos");
    assert!(d.join("chelsea.png").exists(), "{} is missing: run `bash .ci/models.sh --testdata`", d.display());
    d
}

/// Counts what ingestion reports as written.
#[derive(Default)]
struct Count(AtomicUsize);

impl Observer for Count {
    fn items_written(&self, _collection: &str, items: &[agentdb_engine::Item], ids: &[String]) {
        assert_eq!(items.len(), ids.len());
        self.0.fetch_add(items.len(), Ordering::Relaxed);
    }
}

fn query(text: &str, mode: Retrieval) -> CrossQuery {
    CrossQuery {
        input: Some(QueryInput::Text(text.into())),
        keyword: KeywordQuery { mode, ..Default::default() },
        space: String::new(),
        k: 3,
        filter: None,
        params: Default::default(),
        mode: Default::default(),
        weights: Default::default(),
        with_payload: true,
        explain: true,
    }
}

fn file_name(source: &str) -> &str {
    Path::new(source).file_name().and_then(|n| n.to_str()).unwrap_or(source)
}

#[test]
fn a_mixed_folder_is_ingested_and_searched_across_modalities() {
    let enc = Encoders::load(&ModelsConfig::default(), None);
    assert!(enc.text.is_some() && enc.image.is_some(), "models missing: run `make models` ({:?})", enc.text_problem);
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("folder");
    std::fs::create_dir(&folder).unwrap();
    for p in ["chelsea.png", "horse.png", "coffee.png"] {
        std::fs::copy(photos().join(p), folder.join(p)).unwrap();
    }
    std::fs::write(
        folder.join("invoice.txt"),
        "Invoice AX-4471 from the plumbing company was paid by bank transfer on the third of March.",
    )
    .unwrap();
    std::fs::write(
        folder.join("garden.md"),
        "# Garden notes\n\nThe tomatoes need watering twice a day while the summer heat lasts.",
    )
    .unwrap();
    std::fs::write(folder.join("empty.txt"), "").unwrap();
    std::fs::write(folder.join("noise.bin"), [0u8, 159, 146, 150, 255, 0, 1, 2]).unwrap();

    let db = Database::open(&dir.path().join("data"), CollectionOptions::default()).unwrap();
    let spaces = enc.multimodal_spaces().unwrap();
    let col = db
        .create_collection(CollectionSpec { name: "media".into(), spaces, keyword: Some(KeywordSpec::default()) })
        .unwrap();
    let lim = IngestLimits::default();
    let seen = Count::default();
    let mut ingested = 0;
    let mut files: Vec<_> = std::fs::read_dir(&folder).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for f in &files {
        let src = f.display().to_string();
        let out = ingest_file(&*col, &enc, &src, &std::fs::read(f).unwrap(), lim, &seen);
        let name = file_name(&src).to_string();
        match (name.as_str(), &out.status) {
            ("empty.txt", IngestStatus::Failed(e)) => {
                assert!(matches!(e, Error::InvalidInput(_)), "{e:?}");
                assert_eq!(e.to_string(), format!("{src}: file is empty"));
            }
            ("noise.bin", IngestStatus::Failed(e)) => {
                assert!(e.to_string().contains("unrecognised content"), "{e}");
            }
            (_, IngestStatus::Ingested) => {
                assert!(out.items >= 1, "{name}");
                ingested += out.items as usize;
            }
            _ => panic!("{name}: unexpected outcome {out:?}"),
        }
    }
    assert_eq!(seen.0.load(Ordering::Relaxed), ingested, "the observer saw every written item");
    assert_eq!(col.count(None).unwrap() as usize, ingested);
    // The same bytes again: skipped, nothing written.
    let cat = folder.join("chelsea.png");
    let again = ingest_file(&*col, &enc, "copy-of-chelsea.png", &std::fs::read(&cat).unwrap(), lim, &seen);
    assert!(matches!(again.status, IngestStatus::Skipped), "{again:?}");
    assert_eq!(again.media_type, "image/png");

    // Text finds photos by what they show, and notes by what they say.
    for (q, want) in [("a cat", "chelsea.png"), ("a horse", "horse.png"), ("a cup of espresso", "coffee.png")] {
        let hits = run(&*col, &enc, query(q, Retrieval::Dense), lim).unwrap();
        assert_eq!(file_name(&hits[0].source), want, "{q}: {hits:#?}");
        assert_eq!(hits[0].modality, "image");
        assert!(hits[0].part.starts_with("image "), "{}", hits[0].part);
        assert!(!hits[0].explain.is_empty());
    }
    let hits = run(&*col, &enc, query("when was the plumber paid?", Retrieval::Auto), lim).unwrap();
    assert_eq!(file_name(&hits[0].source), "invoice.txt", "{hits:#?}");
    assert_eq!(hits[0].payload.as_ref().unwrap()["modality"], "text");
    // Keyword retrieval alone finds the exact token; dense and keyword lists are explained.
    let hits = run(&*col, &enc, query("AX-4471", Retrieval::Keyword), lim).unwrap();
    assert_eq!(file_name(&hits[0].source), "invoice.txt", "{hits:#?}");
    assert!(hits[0].explain.iter().any(|e| e.list == "keyword"), "{:?}", hits[0].explain);
    // A query image finds the same photograph first.
    let mut q = query("", Retrieval::Dense);
    q.input = Some(QueryInput::Image(std::fs::read(folder.join("horse.png")).unwrap()));
    let hits = run(&*col, &enc, q, lim).unwrap();
    assert_eq!(file_name(&hits[0].source), "horse.png", "{hits:#?}");
    // Bad queries are errors that say what is wrong, of the caller's kind.
    let mut q = query("", Retrieval::Dense);
    q.input = Some(QueryInput::Image(b"not an image".to_vec()));
    let e = run(&*col, &enc, q, lim).unwrap_err();
    assert!(e.to_string().starts_with("query image: "), "{e}");
    let mut q = query("cats", Retrieval::Dense);
    q.weights.insert("nope/image".into(), 2.0);
    let e = run(&*col, &enc, q, lim).unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)) && e.to_string().contains("unknown list 'nope/image'"), "{e}");
}
