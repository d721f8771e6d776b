import type { Logger } from '@aws-lambda-powertools/logger';
import { logToTerminal, serviceLogger } from '../../lambda/app/logging.ts';

/**
 * The housekeeper's own logger (`serviceLogger`, with whatever it does to what it prints), made
 * to write its JSON lines into `lines` and set to DEBUG, so the campaign can look for the session
 * key in every log line of an in-process run. Its children (one per line of a pass) write there too.
 */
export function capturingLogger(lines: string[]): Logger {
  logToTerminal({ format: 'json', write: (line) => lines.push(line), color: false });
  try {
    const logger = serviceLogger();
    logger.setLogLevel('DEBUG');
    return logger;
  } finally {
    logToTerminal(undefined);
  }
}
