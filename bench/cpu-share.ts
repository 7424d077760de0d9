import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** CFS bandwidth control's period, µs: the kernel's default. A share is that much CPU time in every period. */
const PERIOD_US = 100_000;

/** Where this machine keeps the CPU controller: cgroup v2's unified tree, or v1's own `cpu` hierarchy. */
function cpuController(): { version: 1 | 2; root: string } | undefined {
  const unified = '/sys/fs/cgroup';
  if (readOr(join(unified, 'cgroup.controllers')).split(/\s+/).includes('cpu')) return { version: 2, root: unified };
  if (existsSync('/sys/fs/cgroup/cpu/cpu.cfs_quota_us')) return { version: 1, root: '/sys/fs/cgroup/cpu' };
  return undefined;
}

function readOr(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** This process's group under the controller, from /proc/self/cgroup (`0::/path` in v2, `N:cpu...:/path` in v1). */
function ownGroup(version: 1 | 2): string {
  for (const line of readOr('/proc/self/cgroup').split('\n')) {
    const [, controllers, path] = line.split(':');
    if (version === 2 && controllers === '' && path !== undefined) return path;
    if (version === 1 && controllers?.split(',').includes('cpu') && path !== undefined) return path;
  }
  return '/';
}

export type CpuShare = {
  /** Runs `work` with this process held to `share` of one CPU (Lambda's memory-proportional CPU), then lets it go. */
  run<T>(share: number, work: () => Promise<T>): Promise<T>;
  /** How the share is enforced, for the record. */
  describe: string;
  /** Removes the group, once nothing runs in it. */
  release(): void;
};

/**
 * Lambda gives a function CPU in proportion to its memory by CPU bandwidth control: so much CPU time in each period.
 * The benchmarks hold their own process to the same share, in a cgroup of its own, while it runs a function's work;
 * processes started before (the emulators) keep the rest of the machine. Undefined where the machine does not let
 * this process make and use such a group (not root, no CPU controller): the caller says so and estimates instead.
 */
export function cpuShareControl(): CpuShare | undefined {
  const controller = cpuController();
  if (!controller) return undefined;
  const home = join(controller.root, ownGroup(controller.version));
  const group = join(controller.root, `email-dispatch-bench-${process.pid}`);
  try {
    if (!existsSync(group)) mkdirSync(group);
  } catch {
    return undefined;
  }
  const limit = (share: number) => {
    const quota = Math.max(1000, Math.round(share * PERIOD_US));
    if (controller.version === 2) writeFileSync(join(group, 'cpu.max'), `${quota} ${PERIOD_US}`);
    else {
      writeFileSync(join(group, 'cpu.cfs_period_us'), String(PERIOD_US));
      writeFileSync(join(group, 'cpu.cfs_quota_us'), String(quota));
    }
  };
  const move = (to: string) => writeFileSync(join(to, 'cgroup.procs'), String(process.pid));
  // Tried once here, so a machine that lets the group be made but not used (a cgroup v2 tree that refuses processes
  // in an inner group, a read-only quota) falls back to the estimate instead of failing a run midway.
  try {
    limit(1);
    move(group);
    move(home);
  } catch {
    try {
      move(home);
    } catch {
      // Never left it.
    }
    rmdirSync(group);
    return undefined;
  }
  return {
    describe: `cgroup v${controller.version} CPU bandwidth, ${PERIOD_US / 1000} ms period`,
    async run(share, work) {
      limit(share);
      move(group);
      try {
        return await work();
      } finally {
        move(home);
      }
    },
    release() {
      try {
        rmdirSync(group);
      } catch {
        // Already gone.
      }
    },
  };
}
