import { describe, expect, it } from 'vitest';
import { parseEvent, parseInvocation } from '../../../lambda/app/event.ts';
import { FULL_PASS } from '../../../lambda/core/request.ts';
import { EventError } from '../../../lambda/shared/errors.ts';
import { thrownBy } from '../../support/thrown.ts';

const LINE_A = '0b7c6f2e-3d1a-4c5b-9e8f-7a6b5c4d3e2f';
const LINE_B = 'a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d';

/** What an EventBridge rule with a schedule expression delivers, every field of it. */
const RULE_EVENT = Object.freeze({
  version: '0',
  id: '53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa',
  'detail-type': 'Scheduled Event',
  source: 'aws.events',
  account: '123456789012',
  time: '2024-03-19T12:00:00Z',
  region: 'eu-central-1',
  resources: ['arn:aws:events:eu-central-1:123456789012:rule/housekeeping'],
  detail: {},
});

/** Runs `parseEvent` and returns the EventError it threw, failing the test otherwise. */
const eventErrorOf = (event: unknown): EventError => thrownBy(EventError, () => parseEvent(event));

describe('parseEvent', () => {
  describe('full pass', () => {
    it.each([
      ['undefined', undefined],
      ['null', null],
      ['an empty object', {}],
    ])('reads %s as a full pass', (_what, event) => {
      const request = parseEvent(event);

      expect(request).toEqual(FULL_PASS);
    });

    it('reads an EventBridge rule scheduled event as a full pass', () => {
      const event = RULE_EVENT;

      const request = parseEvent(event);

      expect(request).toEqual(FULL_PASS);
    });

    it('reads an EventBridge Scheduler event as a full pass', () => {
      const event = {
        source: 'aws.scheduler',
        'detail-type': 'Scheduled Event',
        detail: {},
        resources: ['arn:aws:scheduler:eu-central-1:123456789012:schedule/default/housekeeping'],
      };

      const request = parseEvent(event);

      expect(request).toEqual(FULL_PASS);
    });

    it('does not take an aws.events source without a detail-type for a scheduled event', () => {
      const event = { source: 'aws.events' };

      const error = eventErrorOf(event);

      expect(error.message).toContain('source');
    });

    it('does not take another source for a scheduled event', () => {
      const event = { source: 'my.app', 'detail-type': 'Scheduled Event' };

      const error = eventErrorOf(event);

      expect(error.message).toContain('source');
    });

    it('does not take another detail-type for a scheduled event', () => {
      const event = { ...RULE_EVENT, 'detail-type': 'Object Created' };

      const error = eventErrorOf(event);

      expect(error.message).toContain('detail-type');
    });
  });

  describe('a scheduled event is only a scheduled event', () => {
    it('refuses a scheduled event that also asks for a dry run of named lines, naming the fields', () => {
      const event = { source: 'aws.events', 'detail-type': 'Scheduled Event', dryRun: true, ids: [LINE_A] };

      const error = eventErrorOf(event);

      expect(error.message).toContain('dryRun');
      expect(error.message).toContain('ids');
      expect(error.message).toMatch(/source.*detail-type|detail-type.*source/);
    });

    it.each([
      ['dryRun', true],
      ['dryRun', false],
      ['ids', [LINE_A]],
      ['archiveOnly', true],
      ['maxLines', 1],
      ['onConflict', 'fail'],
      ['minAge', '7d'],
      ['maxDurationSeconds', 60],
      ['audit', true],
    ])('refuses an EventBridge rule event carrying the manual field %s, naming it', (field, value) => {
      const event = { ...RULE_EVENT, [field]: value };

      const error = eventErrorOf(event);

      expect(error.message).toContain(field);
    });

    it.each([
      ['source', { source: 'aws.scheduler', archiveOnly: true }],
      ['detail-type', { 'detail-type': 'Scheduled Event', ids: [LINE_A] }],
    ])('refuses manual fields next to a lone %s, naming both', (marker, event) => {
      const error = eventErrorOf(event);

      expect(error.message).toContain(marker);
      expect(error.message).toContain(Object.keys(event).find((key) => key !== marker));
    });

    it('refuses a scheduled event with a field it does not know, naming it', () => {
      const event = { ...RULE_EVENT, force: true };

      const error = eventErrorOf(event);

      expect(error.message).toContain('force');
    });

    it('refuses an EventBridge Scheduler event with a field it does not know, naming it', () => {
      const event = { source: 'aws.scheduler', 'detail-type': 'Scheduled Event', dryrun: true };

      const error = eventErrorOf(event);

      expect(error.message).toContain('dryrun');
    });

    it('refuses a scheduled event whose detail says something, naming the field', () => {
      const event = { ...RULE_EVENT, detail: { dryRun: true } };

      const error = eventErrorOf(event);

      expect(error.message).toContain('detail');
      expect(error.message).toContain('dryRun');
    });

    it.each([
      ['resources', 'arn:aws:events:eu-central-1:123456789012:rule/housekeeping'],
      ['detail', 'none'],
      ['time', 1710849600],
    ])('refuses a scheduled event whose %s has the wrong type, naming it', (field, value) => {
      const event = { ...RULE_EVENT, [field]: value };

      const error = eventErrorOf(event);

      expect(error.message).toContain(field);
    });

    it('refuses an audit that carries scheduled-event fields, naming them', () => {
      const event = { audit: true, source: 'aws.events', 'detail-type': 'Scheduled Event' };

      expect(() => parseInvocation(event)).toThrow(EventError);
      expect(() => parseInvocation(event)).toThrow(/source/);
    });

    it('reads a complete EventBridge rule event through parseInvocation as a full pass', () => {
      expect(parseInvocation(RULE_EVENT)).toEqual({ kind: 'pass', request: FULL_PASS });
    });
  });

  describe('manual payload', () => {
    it('maps every field of a complete payload', () => {
      const event = { dryRun: true, ids: [LINE_A, LINE_B], archiveOnly: true, maxLines: 3 };

      const request = parseEvent(event);

      expect(request).toEqual({
        dryRun: true,
        ids: [LINE_A, LINE_B],
        archiveOnly: true,
        maxLines: 3,
        onConflict: 'fail',
        maxDurationSeconds: undefined,
        minAgeSeconds: undefined,
      });
    });

    it('fills the fields it is not given with the full-pass values', () => {
      const event = { dryRun: true };

      const request = parseEvent(event);

      expect(request).toEqual({
        dryRun: true,
        ids: undefined,
        archiveOnly: false,
        maxLines: undefined,
        onConflict: 'fail',
        maxDurationSeconds: undefined,
        minAgeSeconds: undefined,
      });
    });

    it('takes keep-both and a max duration for named lines, in lower case', () => {
      const event = { ids: [LINE_A.toUpperCase(), LINE_A], onConflict: 'keep-both', maxDurationSeconds: 60 };

      const request = parseEvent(event);

      expect(request).toMatchObject({ ids: [LINE_A], onConflict: 'keep-both', maxDurationSeconds: 60 });
    });

    it.each([
      ['30m', 1800],
      [7, 7],
      [0, 0],
    ] as const)('reads minAge %j as %i seconds', (minAge, seconds) => {
      expect(parseEvent({ minAge }).minAgeSeconds).toBe(seconds);
    });

    it.each([['soon'], [-1], ['1.5h']] as const)('refuses minAge %j', (minAge) => {
      expect(() => parseEvent({ minAge })).toThrow(EventError);
    });

    it('reads the dismantle guard of one run, and leaves it out when not given', () => {
      expect(parseEvent({ maxDismantles: 0, maxDismantleShare: 1 })).toMatchObject({
        maxDismantles: 0,
        maxDismantleShare: 1,
      });
      expect(parseEvent({})).not.toHaveProperty('maxDismantles');
    });

    it.each([
      [{ maxDismantles: -1 }],
      [{ maxDismantles: 1.5 }],
      [{ maxDismantleShare: 0 }],
      [{ maxDismantleShare: 1.01 }],
      [{ maxDismantleShare: '0.5' }],
    ])('refuses the dismantle guard %j, naming the field', (event) => {
      expect(() => parseEvent(event)).toThrow(new RegExp(`^event: ${Object.keys(event)[0]}`));
    });

    it('refuses keep-both without ids: a person resolves named lines', () => {
      expect(() => parseEvent({ onConflict: 'keep-both' })).toThrow(/keep-both.*give ids/);
    });

    it.each([[{ onConflict: 'overwrite' }], [{ maxDurationSeconds: 0 }], [{ maxDurationSeconds: 1.5 }]])(
      'refuses %j',
      (event) => {
        expect(() => parseEvent(event)).toThrow(EventError);
      },
    );

    it('collapses duplicate ids, keeping the first order', () => {
      const event = { ids: [LINE_A, LINE_B, LINE_A, LINE_B, LINE_A] };

      const request = parseEvent(event);

      expect(request.ids).toEqual([LINE_A, LINE_B]);
    });

    it.each([
      ['dryRun', 'yes'],
      ['dryRun', 1],
      ['dryRun', null],
      ['archiveOnly', 'true'],
      ['archiveOnly', {}],
      ['ids', LINE_A],
      ['ids', [42]],
      ['ids', { 0: LINE_A }],
      ['maxLines', '5'],
      ['maxLines', true],
      ['maxLines', [5]],
    ])('refuses %s of the wrong type (%j), naming the field', (field, value) => {
      const event = { [field]: value };

      const error = eventErrorOf(event);

      expect(error.message).toContain(field);
    });

    it('refuses a field it does not know, naming it', () => {
      const event = { dryrun: true };

      const error = eventErrorOf(event);

      expect(error.message).toContain('dryrun');
    });

    it('refuses an unknown field next to valid ones', () => {
      const event = { dryRun: true, ids: [LINE_A], force: true };

      const error = eventErrorOf(event);

      expect(error.message).toContain('force');
    });

    it('refuses an empty ids list', () => {
      const event = { ids: [] };

      const error = eventErrorOf(event);

      expect(error.message).toContain('ids');
    });

    it.each([
      'not-a-uuid',
      '',
      '../../etc/passwd',
      `${LINE_A}/data`,
      `${LINE_A}\n`,
      '0b7c6f2e3d1a4c5b9e8f7a6b5c4d3e2f',
    ])('refuses the id %j, naming its position', (id) => {
      const event = { ids: [LINE_A, id] };

      const error = eventErrorOf(event);

      expect(error.message).toContain('ids.1');
      expect(error.message).toContain('UUID');
    });

    it.each([1.5, 0, -1, -0.5, Number.MAX_SAFE_INTEGER + 2])('refuses maxLines %s', (maxLines) => {
      const event = { maxLines };

      const error = eventErrorOf(event);

      expect(error.message).toContain('maxLines');
    });

    it('accepts maxLines 1', () => {
      const event = { maxLines: 1 };

      const request = parseEvent(event);

      expect(request.maxLines).toBe(1);
    });
  });

  describe('not an object', () => {
    it.each([
      ['a string', 'run'],
      ['a number', 42],
      ['a boolean', true],
      ['an array', [LINE_A]],
    ])('refuses %s', (_what, event) => {
      const error = eventErrorOf(event);

      expect(error.message).toMatch(/^event: expected an object/);
    });
  });
});
