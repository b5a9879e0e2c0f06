# The Homebrew formula of hupwatch's macOS release. This is a template: `cargo xtask dist`
# renders it into target/dist/hupwatch.rb with the version, the tarball's URL
# (HUPWATCH_RELEASE_URL, default file:///Users/Shared/hupwatch) and its SHA-256. Put the
# rendered file in a tap's Formula/ folder (Homebrew installs only from taps):
# docs/macos.md.
#
# `cargo xtask dist` checks it with `ruby -c` and checks that every path `install` names
# is in the tarball; keep each install line in one of the forms
#   X.install "path"   X.install "path" => "name"   X.install Dir["glob"]
class Hupwatch < Formula
  desc "Finds processes that outlive their terminal, ignore SIGHUP or keep growing"
  homepage "@HOMEPAGE@"
  url "@URL@"
  version "@VERSION@"
  sha256 "@SHA256@"
  license any_of: ["MIT", "Apache-2.0"]

  # One universal binary (arm64 and x86_64), built for macOS 13 and later.
  depends_on macos: :ventura

  def install
    bin.install "hupwatch"
    man1.install Dir["man/man1/*.1"]
    bash_completion.install "completions/hupwatch.bash" => "hupwatch"
    zsh_completion.install "completions/_hupwatch"
    fish_completion.install "completions/hupwatch.fish"
    # The launchd plists name the tarball's /usr/local/bin/hupwatch; here the binary is
    # Homebrew's (/opt/homebrew on Apple silicon). `brew services` uses the service block
    # below; the scheduled reap is loaded by hand (caveats).
    (pkgshare/"launchd").install Dir["launchd/*.plist"]
    inreplace Dir["#{pkgshare}/launchd/*.plist"], "/usr/local/bin/hupwatch", "#{opt_bin}/hupwatch"
    pkgshare.install "dashboards"
    doc.install "docs"
    doc.install "README.md"
  end

  # As root (`sudo brew services start hupwatch`) hupwatch reads DTrace; as the user it
  # polls the process table, which sees only that user's processes.
  service do
    run [opt_bin/"hupwatch", "run", "--listen", "127.0.0.1:9464"]
    require_root true
    keep_alive successful_exit: false
    process_type :background
    log_path var/"log/hupwatch.log"
    error_log_path var/"log/hupwatch.log"
  end

  def caveats
    <<~EOS
      hupwatch sees every process through DTrace only as root:
        sudo brew services start hupwatch
      Started without sudo, or where System Integrity Protection keeps dtrace from
      running, it polls the process table instead (--source proc): it still finds
      detached, orphaned and growing processes, later and with less evidence.
      To let dtrace run, boot into Recovery and run: csrutil enable --without dtrace

      Alerts and the daemon's output go to #{var}/log/hupwatch.log; metrics and
      sessions are on http://127.0.0.1:9464.

      The hourly reap of sessions that outlived their terminal (not loaded):
        sudo cp #{opt_pkgshare}/launchd/com.hupwatch.reap.plist /Library/LaunchDaemons/
        sudo launchctl bootstrap system /Library/LaunchDaemons/com.hupwatch.reap.plist

      Check that it catches what it claims on this Mac, and attach the result to a
      bug report:
        hupwatch selftest --json
        sudo hupwatch selftest --json
    EOS
  end

  test do
    assert_match version.to_s, shell_output("#{bin}/hupwatch --version")
    # Runs its own test processes in a pseudo-terminal, hangs it up and exits non-zero
    # when a verdict it expects is missed (as the test's user: the polling source).
    system bin/"hupwatch", "selftest"
  end
end
