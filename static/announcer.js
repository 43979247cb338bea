// The page's one polite live region, and the rules for what it says and how often.

/** Positions above this are announced at most once per gap; at or below it, every change. */
export const CLOSE_POSITION = 3;
export const POSITION_GAP_MS = 10000;
const MILESTONES = [25, 50, 75, 100];

/**
 * Screen readers hear the import's news without being flooded: the position when it changes
 * (at most once every 10 s, then every change from #3 on), "started", progress at 25, 50, 75
 * and 100 %, and the outcome. The visible numbers may move more often than this.
 */
export class Announcer {
  constructor(region) {
    this.region = region;
    this.timer = null;
    this.reset();
  }

  /** A new import: nothing said about it yet. */
  reset() {
    clearTimeout(this.timer);
    this.timer = null;
    this.saidPosition = null;
    this.saidAt = null; // performance.now() of the last position announcement
    this.pending = null; // a position held back by the gap
    this.milestone = 0; // the highest progress milestone said
  }

  /** Says `text` now. The same words twice in a row are still heard (a no-break space differs). */
  say(text) {
    const same = this.region.textContent.replace(/\u00a0$/, "") === text;
    this.region.textContent = same && !this.region.textContent.endsWith("\u00a0") ? `${text}\u00a0` : text;
  }

  position(position, words) {
    if (position === this.saidPosition) {
      this.pending = null;
      return;
    }
    const now = performance.now();
    const due = this.saidAt === null ? now : this.saidAt + POSITION_GAP_MS;
    if (position <= CLOSE_POSITION || now >= due) {
      this.sayPosition(position, words);
      return;
    }
    // Held back: the latest position is said when the gap is over, if it still differs.
    this.pending = { position, words };
    if (this.timer === null) {
      this.timer = setTimeout(() => {
        this.timer = null;
        if (this.pending !== null) {
          this.sayPosition(this.pending.position, this.pending.words);
        }
      }, due - now);
    }
  }

  sayPosition(position, words) {
    clearTimeout(this.timer);
    this.timer = null;
    this.pending = null;
    this.saidPosition = position;
    this.saidAt = performance.now();
    this.say(words(position));
  }

  /** The line is behind us: a held-back position is no longer news. */
  leftLine() {
    clearTimeout(this.timer);
    this.timer = null;
    this.pending = null;
  }

  /** Says the highest milestone reached since the last one said, if any. */
  progress(page, pages, words) {
    if (!pages) {
      return;
    }
    const percent = (Math.min(page, pages) / pages) * 100;
    const reached = MILESTONES.filter((m) => percent >= m).pop() || 0;
    if (reached > this.milestone) {
      this.milestone = reached;
      this.say(words(reached));
    }
  }
}
