pub fn run(_m: u64) -> anyhow::Result<()> { anyhow::bail!("todo") }
