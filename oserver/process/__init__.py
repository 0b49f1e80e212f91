"""Processes: the master (generations, signals), the workers (epoll loop, timers, accepting), shared stats,
accept balancing and systemd."""
