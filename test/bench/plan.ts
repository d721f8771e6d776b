/** A file to copy, as the parent process knows it from the simulator. */
export interface PlanFile {
  readonly name: string;
  readonly size: number;
}

/** A finished line and its files: what the reference copy works from (it reads no line document). */
export interface PlanLine {
  readonly id: string;
  readonly files: readonly PlanFile[];
}

/** What the reference copy or the obvious way moved. */
export interface Moved {
  readonly lines: number;
  readonly files: number;
  readonly bytes: number;
}
