/*
 * Defaults of the settings every transport honours (ConnectOptions, ListenOptions). They live
 * apart from the tcp wire codec so that client and server can read them without importing it.
 */

/** Default cap on a frame body; a larger declared length closes the connection. */
export const DEFAULT_MAX_FRAME_BYTES = 8 * 1024 * 1024;
/** Window used when a request does not say (HTTP/2's default initial window). */
export const DEFAULT_STREAM_WINDOW = 65_535;
/** The smallest window a consumer may grant, so that any chunk can eventually be sent. */
export const MIN_STREAM_WINDOW = 1024;
/** Default budget of unsent bytes per connection, on both sides (`maxUnsentBytes`). */
export const DEFAULT_MAX_UNSENT_BYTES = 4 * 1024 * 1024;
