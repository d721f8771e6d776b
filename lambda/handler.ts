// Placeholder entry; replaced by the real handler.
export const handler = async (): Promise<Record<string, never>> => ({});
