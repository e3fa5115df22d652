/**
 * Questions about a path that never throw: is something there, is it a file,
 * is it a folder. Any failure (not found, no permission) answers false.
 */

/** True when `path` exists, symlinks followed (a dangling link is false), like Python's os.path.exists. */
export async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/** True when something is at `path` itself, symlinks not followed (a dangling link is true), like os.path.lexists. */
export async function lexists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

/** True when `path` is a file (or a symlink to one). */
export async function isFile(path: string): Promise<boolean> {
  return await Deno.stat(path).then((info) => info.isFile, () => false);
}

/** True when `path` is a folder (or a symlink to one). */
export async function isDirectory(path: string): Promise<boolean> {
  return await Deno.stat(path).then((info) => info.isDirectory, () => false);
}
