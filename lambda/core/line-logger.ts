import type { Logger } from '@aws-lambda-powertools/logger';
import type {
  ConstructorOptions,
  LogItemExtraInput,
  LogItemMessage,
} from '@aws-lambda-powertools/logger/types';

type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'critical';

/** The methods that print one entry; each gains the line's id. */
const LEVELS: readonly Level[] = ['trace', 'debug', 'info', 'warn', 'error', 'critical'];

/**
 * What would change the run's logger for every line at once (a child's keys and level are its
 * own; these would be the run's): refused, by name.
 */
const SHARED_STATE = new Set<PropertyKey>([
  'addContext',
  'addPersistentLogAttributes',
  'appendKeys',
  'appendPersistentKeys',
  'removeKeys',
  'removePersistentKeys',
  'removePersistentLogAttributes',
  'resetKeys',
  'setLogLevel',
  'setPersistentLogAttributes',
  'setCorrelationId',
]);

/**
 * The run's logger with `lineId` on every entry, as `createChild({ persistentKeys: { lineId } })`
 * prints it (in the same place, after the run's keys; a key given at the call wins), without
 * building a Logger per line: `createChild` reads the environment again and builds a new Console
 * each time, a share of a small line's CPU (issue 22). The entries go through the run's logger, so
 * its level, keys and output are the line's. A method that would change the run's logger for
 * every line (appending keys, the level) throws; `createChild` gives a child that keeps `lineId`.
 */
export function lineLogger(run: Logger, lineId: string): Logger {
  const own = new Map<PropertyKey, unknown>();
  for (const level of LEVELS) {
    own.set(level, (input: LogItemMessage, ...extra: LogItemExtraInput) =>
      run[level](withLineId(input, lineId), ...extra),
    );
  }
  own.set('createChild', (options?: ConstructorOptions) => {
    const child = run.createChild(options);
    child.appendPersistentKeys({ lineId, ...child.getPersistentLogAttributes() });
    return child;
  });
  own.set('getPersistentLogAttributes', () => ({ ...run.getPersistentLogAttributes(), lineId }));
  return new Proxy(run, {
    get(target, key) {
      if (own.has(key)) return own.get(key);
      if (SHARED_STATE.has(key)) {
        return () => {
          throw new TypeError(`${String(key)} on the logger of line ${lineId} would change the run's logger`);
        };
      }
      const value: unknown = Reflect.get(target, key, target);
      // Powertools keeps its state in #private fields: a method must run on the logger itself.
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** The entry's message with `lineId` first among its own keys, where a persistent key would stand. */
function withLineId(input: LogItemMessage, lineId: string): LogItemMessage {
  return typeof input === 'string' ? { message: input, lineId } : { lineId, ...input };
}
