"""What the benchmark scripts read about a process from /proc."""


def rss_mb(pid):
    """Resident set size of `pid` in MiB (0 when /proc has no VmRSS for it)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0
