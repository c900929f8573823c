"""URDFs of serial arms for tests: one revolute joint after another, then a fixed tool frame."""
from __future__ import annotations


def serial_urdf(name: str, joints, tool: tuple[str, str] = ("tool0", "0.05 0 0"), lower: float = -3.0,
                upper: float = 3.0) -> str:
    """``joints``: (joint name, origin xyz in the previous link, axis xyz, velocity limit) each.
    Links are ``base``, ``l1``, ``l2``, ...; the tool frame ``tool[0]`` sits at ``tool[1]``
    in the last link."""
    links = ["base", *(f"l{i + 1}" for i in range(len(joints)))]
    out = [f'<robot name="{name}">', *(f'  <link name="{link}"/>' for link in links), f'  <link name="{tool[0]}"/>']
    for i, (joint, xyz, axis, velocity) in enumerate(joints):
        out.append(f'  <joint name="{joint}" type="revolute"><parent link="{links[i]}"/><child link="{links[i + 1]}"/>'
                   f'<origin xyz="{xyz}"/><axis xyz="{axis}"/>'
                   f'<limit lower="{lower}" upper="{upper}" velocity="{velocity}" effort="1"/></joint>')
    out.append(f'  <joint name="{tool[0]}_joint" type="fixed"><parent link="{links[-1]}"/><child link="{tool[0]}"/>'
               f'<origin xyz="{tool[1]}"/></joint>')
    out.append("</robot>")
    return "\n".join(out)
