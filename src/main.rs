use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = tapctl::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tapctl::errln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(tapctl::commands::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            tapctl::errln!("{}", e.render());
            ExitCode::from(e.exit_code())
        }
    }
}
