"""The only writers to the outside world: the outbox (intent before write, cap, never twice), senders, report targets."""
