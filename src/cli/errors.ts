/** A mistake in how the command was used (exit code 2), with what to do instead. */
export class UsageError extends Error {}

/** The user pressed Ctrl-C (exit code 130). */
export class Cancelled extends Error {}
