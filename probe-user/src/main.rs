fn main() -> std::process::ExitCode {
    hupwatch::cli::main()
}
