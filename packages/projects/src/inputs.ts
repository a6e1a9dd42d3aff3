import { Project, ProjectName, Role, UserName } from '@computepods/protocol';
import { z } from 'zod';

/** What `create` takes: the project's first admin is required, a project always has one. */
export const CreateProjectInput = z.strictObject({
  name: ProjectName,
  description: Project.shape.description,
  tags: Project.shape.tags,
  active: Project.shape.active,
  admin: UserName,
});
export type CreateProjectInput = z.input<typeof CreateProjectInput>;

/** What `update` may change; members and queues have their own operations. */
export const UpdateProjectInput = z
  .strictObject({
    description: z.string().max(2000).optional(),
    // unwrap: the record's default ([]) must not turn "not given" into "clear the tags".
    tags: Project.shape.tags.unwrap().optional(),
    active: z.boolean().optional(),
  })
  .refine((u) => Object.values(u).some((v) => v !== undefined), {
    message: 'nothing to change: give a description, tags or active',
  });
export type UpdateProjectInput = z.input<typeof UpdateProjectInput>;

export const MemberInput = z.strictObject({ user: UserName, role: Role });
export type MemberInput = z.input<typeof MemberInput>;
