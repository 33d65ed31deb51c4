fn main() -> std::process::ExitCode {
    redial::cli::main()
}
