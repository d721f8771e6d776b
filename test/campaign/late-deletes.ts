/**
 * A DELETE the service took without acting on it (a 204, a 202), and carried out later, between
 * runs, after the line had restated its files: the files it stated last are lost, and no code on
 * our side can stop that. What the housekeeper owes is the truth: once its pending marker notes
 * the changed statement (`statedSince`, written by a run that read the line still there and could
 * not archive it as stated), the receipt of the late DELETE records a discrepancy, and the run
 * that writes it reports the line failed and dismantled. The change is excused like a change at
 * the DELETE itself (`changedAtDelete`); the record is required.
 *
 * Only the marker is taken as proof that a run read the changed statement: a GET the campaign saw
 * go out may have been answered with a fault (a 429, a broken body), which tells the housekeeper
 * nothing.
 */
import { type DeleteMoment, filesOf, statement } from './observer.ts';
import { type BucketView, readJson } from './store-read.ts';
import { PREFIX, type Stage } from './world.ts';

export class LateDeletes {
  /** Lines deleted late after a change their marker noted: their receipt must record a discrepancy. */
  readonly #owed = new Set<string>();

  /**
   * Right before the service completes line `id`'s deferred deletion: when it states other files
   * than at its last live DELETE, the change is excused (added to `changedAtDelete`), and owed a
   * discrepancy in its receipt when the pending marker notes what it states now.
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
    const marker = (await readJson(stage.world.s3Client, stage.bucket, `${PREFIX}_pending/${id}.json`)) as
      | { statedSince?: { name: unknown; size: unknown; sha256: unknown }[] }
      | undefined;
    const noted = Array.isArray(marker?.statedSince) && statement('', marker.statedSince) === files;
    return {
      // Only once the service did complete it (it does only where a DELETE is recorded pending).
      completed: () => {
        if (!changed) return;
        changedAtDelete.add(id);
        if (noted) this.#owed.add(id);
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
          `${key}: the service carried out a DELETE it took before the line restated its files, which the pending marker noted, and the receipt records no discrepancy`,
        );
      }
    }
    return problems;
  }
}
