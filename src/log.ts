import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/**
 * Structured logs. Secrets never reach a log line: the fields that could carry one are
 * redacted here, once, whatever the call site passes.
 */
export function createLogger(level: LevelWithSilent): Logger {
  return pino({
    level,
    base: { pid: process.pid },
    redact: {
      paths: ['secret', 'password', 'token', '*.secret', '*.password', '*.token', 'req.headers.authorization'],
      censor: '[redacted]',
    },
  });
}
