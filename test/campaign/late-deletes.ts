/**
 * A DELETE the service took without acting on it (a 204, a 202), and carried out later, between
 * runs, after the line had restated its files: the files it stated last are lost, and no code on
 * our side can stop that. What the housekeeper owes is the truth: once a run has read the line in
 * that changed state (and its records could be written), the receipt of the late DELETE records a
 * discrepancy, and the run that writes it reports the line failed and dismantled. The change is
 * excused like a change at the DELETE itself (`changedAtDelete`); the record is required.
 */
import { type DeleteMoment, filesOf, type RunObserver, signature, statement } from './observer.ts';
import { type BucketView, readJson } from './store-read.ts';
import { PREFIX, type Stage } from './world.ts';

/** What the housekeeper saw of a line since the run of its last live DELETE. */
interface Since {
  /** Statements of the line a GET served it, in runs after the DELETE's. */
  readonly served: Set<string>;
  /** A store fault hit a receipt or a marker in one of those runs: a note may rightly be missing. */
  recordsBroken: boolean;
}

export class LateDeletes {
  readonly #since = new Map<string, Since>();
  /** Lines deleted late after a change a run saw: their receipt must record a discrepancy. */
  readonly #owed = new Set<string>();

  /** After each run: its live DELETEs start a line's account over; its reads are added to it. */
  afterRun(observer: RunObserver, moments: readonly DeleteMoment[]): void {
    for (const [id, statements] of observer.served) {
      const since = this.#since.get(id);
      if (since === undefined) continue;
      for (const served of statements) since.served.add(served);
      if (observer.recordsBroken) since.recordsBroken = true;
    }
    for (const moment of moments) {
      if (moment.live) this.#since.set(moment.id, { served: new Set(), recordsBroken: false });
    }
  }

  /**
   * Right before the service completes line `id`'s deferred deletion: when it states other files
   * than at its last live DELETE, the change is excused (added to `changedAtDelete`); it is owed a
   * discrepancy in its receipt when the pending marker notes what it states now, or when a run read
   * it so and no store fault hit its records.
   */
  async beforeCompletion(
    stage: Stage,
    id: string,
    lastDelete: ReadonlyMap<string, DeleteMoment>,
    changedAtDelete: Set<string>,
  ): Promise<{ completed(): void }> {
    const moment = lastDelete.get(id);
    const files = filesOf(stage, id);
    const changed = moment?.live === true && moment.files !== files;
    const since = this.#since.get(id);
    const read = since?.served.has(signature(stage, id)) === true && !since.recordsBroken;
    const marker = (await readJson(stage.world.s3Client, stage.bucket, `${PREFIX}_pending/${id}.json`)) as
      | { statedSince?: { name: unknown; size: unknown; sha256: unknown }[] }
      | undefined;
    const noted = Array.isArray(marker?.statedSince) && statement('', marker.statedSince) === files;
    return {
      // Only once the service did complete it (it does only where a DELETE is recorded pending).
      completed: () => {
        if (!changed) return;
        changedAtDelete.add(id);
        if (read || noted) this.#owed.add(id);
      },
    };
  }

  /** A receipt of a line owed a discrepancy that records none. */
  async check(view: BucketView): Promise<string[]> {
    const problems: string[] = [];
    for (const id of this.#owed) {
      const key = `${PREFIX}${id}/deleted.json`;
      if (!view.tags.has(key)) continue;
      this.#owed.delete(id);
      const receipt = (await view.json(key)) as { discrepancy?: unknown } | undefined;
      if (receipt?.discrepancy === undefined) {
        problems.push(
          `${key}: the service carried out a DELETE it took before the line restated its files, which a run read, and the receipt records no discrepancy`,
        );
      }
    }
    return problems;
  }
}
