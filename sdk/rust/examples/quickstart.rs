use agentdb_client::{v1, Client, Config};

#[tokio::main]
async fn main() -> Result<(), agentdb_client::Error> {
    let db = Client::connect(Config::from_env()?).await?; // AGENTDB_URL, AGENTDB_API_KEY
    db.create_collection(v1::CreateCollectionRequest { name: "notes".into(), multimodal: true, ..Default::default() })
        .await?;
    db.ingest_paths("notes", &["bread.txt".into()], 4, |p| println!("{} {}", p.source, p.status)).await?;
    let hits = db.search_text("notes", "how do I bake bread", 3).await?;
    println!("{} {:.3}", hits[0].source, hits[0].score);
    Ok(())
}
