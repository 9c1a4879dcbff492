"""Built-in maintenance plan templates per equipment type, bilingual, each task citing its source.

Elevators follow TSG T5002-2017 《电梯维护保养规则》: maintenance is half-monthly, quarterly,
half-yearly and annual, each cycle with its own items (附件A, tables A-1 to A-4 for traction
lifts; 附件D for escalators). The reference file confirms the cycles and two half-monthly items (levelling accuracy,
landing-door lock engagement ≥ 7 mm); the other items listed are a summary of those tables.
Fire systems follow GB 25201-2010 《建筑消防设施的维护管理》 and GB 50974-2014 (fire water);
pumps, fans and the rest follow common property-management practice as the seeds describe it:
年度、季度、月度维保计划, 定期检查、清洁、润滑、紧固、调整. Sources marked "common practice"
are not a standard: adjust them to the manufacturer's manual.

Data only; `maintenance.plans` installs these into the state database and generates work orders.
"""

from __future__ import annotations

from dataclasses import dataclass

TSG_T5002 = "TSG T5002-2017 《电梯维护保养规则》"
GB_25201 = "GB 25201-2010 《建筑消防设施的维护管理》"
GB_50974 = "GB 50974-2014 《消防给水及消火栓系统技术规范》"
PRACTICE = "common practice (物业设施设备维保常规; seeds: 定期检查、清洁、润滑、紧固、调整)"


@dataclass(frozen=True, slots=True)
class TaskTemplate:
    """One periodic job: a work order per piece of equipment and due period."""

    key: str
    title_zh: str
    title_en: str
    interval: str
    skill: str
    duration_min: int
    source: str
    checklist: tuple[tuple[str, str], ...]
    blackout_sensitive: bool = False  # the equipment is out of service while it is done


@dataclass(frozen=True, slots=True)
class PlanTemplate:
    equipment_type: str
    name_zh: str
    name_en: str
    tasks: tuple[TaskTemplate, ...]

    @property
    def key(self) -> str:
        return f"builtin.{self.equipment_type}"


def _task(key: str, titles: tuple[str, str], interval: str, skill: str, minutes: int, source: str,
          *checklist: tuple[str, str], blackout: bool = False) -> TaskTemplate:
    return TaskTemplate(key, titles[0], titles[1], interval, skill, minutes, source, checklist, blackout)


_LIFT = (
    _task("half_monthly", ("电梯半月维护保养", "Elevator half-monthly maintenance"), "half_monthly", "elevator", 60,
          f"{TSG_T5002} 附件A 表A-1 半月维护保养项目",
          ("机房、滑轮间环境清洁,门窗完好,照明正常", "Machine room clean, doors and windows intact, lighting works"),
          ("驱动主机运行无异常振动和声响;制动器动作灵活,间隙符合要求",
           "Traction machine runs without abnormal vibration or noise; brake moves freely, gap within limits"),
          ("轿厢平层准确度符合标准值", "Car levelling accuracy meets the standard value"),
          ("层门锁紧元件啮合长度不小于7mm", "Landing door locking elements engage at least 7 mm"),
          ("层门、轿门门锁电气触点清洁,触点接触良好", "Landing and car door lock contacts clean and closing well"),
          ("轿内报警装置、对讲系统正常", "Car alarm button and intercom work"),
          ("轿门防撞击保护装置(光幕、安全触板)功能有效", "Car door protection (light curtain, safety edge) works"),
          ("底坑环境清洁,无渗水积水;底坑急停开关有效", "Pit clean and dry; pit stop switch works"),
          blackout=True),
    _task("quarterly", ("电梯季度维护保养", "Elevator quarterly maintenance"), "quarterly", "elevator", 90,
          f"{TSG_T5002} 附件A 表A-2 季度维护保养项目",
          ("减速机润滑油油量适宜,无渗漏", "Gearbox oil level right, no leaks"),
          ("制动衬清洁,磨损量不超过制造单位要求", "Brake linings clean, wear within the maker's limit"),
          ("曳引轮槽、悬挂装置(钢丝绳)清洁,无严重油腻,张力均匀", "Sheave grooves and ropes clean, tension even"),
          ("限速器轮槽、限速器钢丝绳清洁,无严重油腻", "Overspeed governor sheave and rope clean"),
          ("靴衬、滚轮清洁,磨损量不超过制造单位要求", "Guide shoe linings and rollers clean, wear within limits"),
          ("验证轿门关闭的电气安全装置工作正常", "Electric safety device proving car door closure works"),
          ("消防开关工作正常,功能有效", "Fire service switch works"),
          blackout=True),
    _task("half_yearly", ("电梯半年维护保养", "Elevator half-yearly maintenance"), "half_yearly", "elevator", 120,
          f"{TSG_T5002} 附件A 表A-3 半年维护保养项目",
          ("电动机与减速机联轴器螺栓连接无松动", "Motor-gearbox coupling bolts tight"),
          ("驱动轮、导向轮轴承部无异常声,无振动,润滑良好", "Drive and deflector sheave bearings quiet and lubricated"),
          ("控制柜内各接线端子接线牢固", "Control cabinet terminals tight"),
          ("悬挂装置、补偿绳磨损量、断丝数不超过要求", "Rope wear and broken wires within limits"),
          ("限速器钢丝绳磨损量、断丝数不超过要求", "Governor rope wear and broken wires within limits"),
          ("上下极限开关工作正常", "Upper and lower final limit switches work"),
          blackout=True),
    _task("annual", ("电梯年度维护保养及自行检查", "Elevator annual maintenance and self-inspection"), "annual",
          "elevator", 240, f"{TSG_T5002} 附件A 表A-4 年度维护保养项目",
          ("控制柜接触器、继电器触点接触良好", "Control cabinet contactor and relay contacts good"),
          ("制动器铁芯(柱塞)清洁、润滑,动作无卡阻;制动弹簧压缩量符合要求",
           "Brake plunger cleaned and lubricated; brake spring compression within limits"),
          ("导电回路绝缘性能符合标准", "Insulation of the electrical circuits meets the standard"),
          ("限速器—安全钳联动试验正常", "Overspeed governor and safety gear linkage test passed"),
          ("上行超速保护装置动作试验正常", "Ascending car overspeed protection test passed"),
          ("轿厢称重装置准确有效", "Car load weighing device accurate"),
          ("缓冲器固定,无松动", "Buffers fixed, not loose"),
          blackout=True),
)

_ESCALATOR = (
    _task("half_monthly", ("自动扶梯半月维护保养", "Escalator half-monthly maintenance"), "half_monthly", "elevator",
          60, f"{TSG_T5002} 附件D 表D-1 半月维护保养项目",
          ("梯级、踏板与梳齿板啮合正常,梳齿无缺损", "Steps mesh with the comb plates; no broken comb teeth"),
          ("扶手带运行速度与梯级同步,表面无破损", "Handrail runs in step with the steps, surface intact"),
          ("出入口急停开关、扶手带入口保护装置有效", "Stop switches and handrail entry guards work"),
          ("驱动主机、制动器工作正常", "Drive and brake work"),
          blackout=True),
    _task("annual", ("自动扶梯年度维护保养及自行检查", "Escalator annual maintenance and self-inspection"), "annual",
          "elevator", 240, f"{TSG_T5002} 附件D 表D-4 年度维护保养项目",
          ("主接触器、控制柜元件检查", "Main contactors and controller parts checked"),
          ("制停距离测试", "Stopping distance test"),
          ("梯级链、驱动链张紧与润滑", "Step chain and drive chain tension and lubrication"),
          blackout=True),
)

_PUMP = (
    _task("monthly", ("水泵月度检查", "Pump monthly inspection"), "monthly", "plumbing", 30, PRACTICE,
          ("运行无异常振动和噪声,轴承温度正常", "Runs without abnormal vibration or noise; bearing temperature normal"),
          ("机械密封/填料无滴漏", "Mechanical seal or packing does not leak"),
          ("进出口压力、电流在正常范围", "Suction/discharge pressure and motor current in range"),
          ("备用泵切换运行", "Duty/standby changeover run")),
    _task("quarterly", ("水泵季度保养", "Pump quarterly maintenance"), "quarterly", "plumbing", 60, PRACTICE,
          ("轴承加注润滑脂", "Grease the bearings"),
          ("联轴器对中、弹性块检查", "Check coupling alignment and elastomer"),
          ("电机绝缘电阻测量(≥0.5MΩ)", "Measure motor insulation resistance (≥ 0.5 MΩ)"),
          ("控制柜接线端子紧固、清洁", "Tighten and clean the control panel terminals")),
    _task("annual", ("水泵年度检修", "Pump annual overhaul"), "annual", "plumbing", 180, PRACTICE,
          ("解体检查叶轮、口环、轴承,必要时更换", "Open up: impeller, wear rings and bearings; replace if worn"),
          ("止回阀、闸阀动作及密封检查", "Check check valves and gate valves operate and seal"),
          ("压力表、变频器参数校核", "Verify pressure gauges and VFD settings")),
)

_FIRE_PUMP = (
    _task("monthly", ("消防水泵月度手动启泵试验", "Fire pump monthly manual start test"), "monthly", "fire", 45,
          f"{GB_50974} §13.1(每月手动启动消防水泵运转一次); {GB_25201}",
          ("手动启动主泵、备用泵各运转一次,检查供电电源", "Start duty and standby pumps by hand; check power"),
          ("出水压力、流量正常,无异常振动", "Outlet pressure and flow normal, no abnormal vibration"),
          ("控制柜处于自动状态,巡检功能正常", "Controller left in AUTO; auto-inspection function works")),
    _task("quarterly", ("消防水泵季度联动试验", "Fire pump quarterly automatic-start test"), "quarterly", "fire", 60,
          f"{GB_50974} §13.1; {GB_25201}",
          ("模拟自动控制条件启动消防水泵", "Start the pump by simulating its automatic start condition"),
          ("压力开关、流量开关动作及信号反馈至消防控制室", "Pressure/flow switches act and report to control room")),
    _task("annual", ("消防水泵年度检测保养", "Fire pump annual test and maintenance"), "annual", "fire", 180,
          f"{GB_25201} (建筑消防设施每年至少全面检测一次)",
          ("流量、压力性能测试", "Flow and pressure performance test"),
          ("电机绝缘、轴承、密封检查保养", "Motor insulation, bearings and seals serviced")),
)

_FAN = (
    _task("quarterly", ("风机季度保养", "Fan quarterly maintenance"), "quarterly", "hvac", 45, PRACTICE,
          ("皮带张紧度、磨损检查", "Check belt tension and wear"),
          ("轴承润滑,运行无异常振动噪声", "Lubricate bearings; no abnormal vibration or noise"),
          ("防火阀、排烟阀动作检查", "Check fire and smoke dampers operate")),
    _task("half_yearly", ("排烟风机半年联动试验", "Smoke fan half-yearly linkage test"), "half_yearly", "fire", 60,
          f"{GB_25201}",
          ("消防联动启动排烟风机,风量、反馈信号正常", "Start the smoke fan from the fire panel; check airflow"),),
)

_FIRE_PANEL = (
    _task("monthly", ("火灾报警控制器月度检查", "Fire alarm panel monthly check"), "monthly", "fire", 45,
          f"{GB_25201} 附录C 单项检查",
          ("自检、消音、复位功能正常", "Self-test, silence and reset work"),
          ("主、备电源自动切换正常", "Mains/battery changeover works"),
          ("抽查探测器、手动报警按钮报警功能", "Spot-test detectors and manual call points")),
    _task("annual", ("火灾自动报警系统年度检测", "Fire alarm system annual test"), "annual", "fire", 240,
          f"{GB_25201} (建筑消防设施每年至少全面检测一次)",
          ("全部探测器、手报报警功能测试", "Test every detector and manual call point"),
          ("联动控制功能(切非、迫降、排烟、广播)全面测试",
           "Full test of linkage (power cut, lift recall, smoke control, broadcast)")),
)

_ELECTRICAL = (
    _task("quarterly", ("配电设备季度保养", "Switchgear quarterly maintenance"), "quarterly", "electrical", 90,
          PRACTICE,
          ("柜内清洁,母排及接线端子紧固", "Clean inside; tighten busbars and terminals"),
          ("红外测温检查接头温升", "Infrared scan of joints"),
          ("仪表、指示灯、断路器操作检查", "Check meters, indicators and breaker operation")),
    _task("annual", ("配电设备年度预防性试验", "Switchgear annual preventive test"), "annual", "electrical", 240,
          PRACTICE + "; 预防性试验按供电部门要求",
          ("绝缘电阻测试", "Insulation resistance test"),
          ("保护装置整定值校验", "Verify protection settings")),
)

_TRANSFORMER = (
    _task("half_yearly", ("变压器半年巡检保养", "Transformer half-yearly maintenance"), "half_yearly", "electrical",
          120, PRACTICE,
          ("温控器、风机工作正常,温度记录", "Temperature controller and fans work; record temperatures"),
          ("外观清洁,无放电痕迹,接头紧固", "Clean, no tracking marks, connections tight")),
    _task("annual", ("变压器年度预防性试验", "Transformer annual preventive test"), "annual", "electrical", 240,
          PRACTICE + "; 预防性试验按供电部门要求",
          ("绝缘电阻、直流电阻测试", "Insulation and winding resistance tests"),),
)

_GENERATOR = (
    _task("monthly", ("柴油发电机月度空载试运行", "Generator monthly no-load run"), "monthly", "electrical", 45,
          PRACTICE,
          ("空载运行15–30分钟,记录电压、频率、油压、水温", "Run 15–30 min off load; log volts, Hz, oil, coolant"),
          ("蓄电池电压、燃油量检查", "Check starter battery voltage and fuel level")),
    _task("annual", ("柴油发电机年度带载试验及保养", "Generator annual load test and service"), "annual",
          "electrical", 240, PRACTICE,
          ("更换机油、机滤、燃油滤、空滤", "Change oil and filters"),
          ("带载试验,ATS切换试验", "Load test and ATS changeover test")),
)

_HVAC = (
    _task("monthly", ("换热/空调设备月度检查", "HVAC plant monthly inspection"), "monthly", "hvac", 60, PRACTICE,
          ("供回水温度、压力正常,无渗漏", "Supply/return temperatures and pressures normal, no leaks"),
          ("过滤器清洁", "Clean the strainers and filters")),
    _task("annual", ("换热/空调设备年度保养(供暖/制冷季前)", "HVAC plant annual service (before the season)"),
          "annual", "hvac", 240, PRACTICE,
          ("换热器清洗除垢", "Descale the heat exchanger"),
          ("阀门、仪表、控制系统校验", "Check valves, gauges and controls")),
)

_WATER_TANK = (
    _task("half_yearly", ("生活水箱清洗消毒", "Water tank cleaning and disinfection"), "half_yearly", "plumbing", 240,
          "common practice: 二次供水水箱每半年清洗消毒一次 (many cities' rules; GB 17051-1997 二次供水设施卫生规范)",
          ("排空、清洗、消毒,水质送检", "Drain, clean, disinfect; send a water sample for testing"),
          ("人孔盖、通气管防虫网、溢流管检查", "Check manhole cover, vent screens and overflow")),
)

_METER = (
    _task("quarterly", ("计量表季度核查", "Meter quarterly check"), "quarterly", "electrical", 20, PRACTICE,
          ("读数与远传数据核对,通信正常", "Local reading matches the remote reading; communication ok"),
          ("表封、表箱完好", "Seals and meter box intact")),
)

_SPRINKLER = (
    _task("monthly", ("喷淋系统月度检查", "Sprinkler system monthly check"), "monthly", "fire", 60,
          f"{GB_25201}; {GB_50974}",
          ("湿式报警阀组压力正常,末端试水装置放水试验", "Alarm valve pressures normal; end-of-line test valve"),
          ("水流指示器、信号阀反馈正常", "Flow switches and supervised valves report correctly")),
)

_GAS_DETECTION = (
    _task("quarterly", ("可燃气体探测器季度检查", "Gas detectors quarterly check"), "quarterly", "fire", 45,
          "GB/T 50493; GB 15322; common practice",
          ("标准气样测试报警及联动切断阀、排风机", "Test gas triggers alarm, shut-off valve and fan"),),
)


BUILTIN_PLANS: dict[str, PlanTemplate] = {
    plan.equipment_type: plan for plan in (
        PlanTemplate("elevator", "电梯维护保养计划(TSG T5002)", "Elevator maintenance plan (TSG T5002)", _LIFT),
        PlanTemplate("escalator", "自动扶梯维护保养计划(TSG T5002)", "Escalator maintenance plan (TSG T5002)",
                     _ESCALATOR),
        PlanTemplate("pump", "水泵维保计划", "Pump maintenance plan", _PUMP),
        PlanTemplate("fire_pump", "消防水泵维保计划", "Fire pump maintenance plan", _FIRE_PUMP),
        PlanTemplate("fan", "风机维保计划", "Fan maintenance plan", _FAN),
        PlanTemplate("fire_panel", "火灾报警系统维保计划", "Fire alarm system maintenance plan", _FIRE_PANEL),
        PlanTemplate("switchgear", "配电设备维保计划", "Switchgear maintenance plan", _ELECTRICAL),
        PlanTemplate("transformer", "变压器维保计划", "Transformer maintenance plan", _TRANSFORMER),
        PlanTemplate("generator", "柴油发电机维保计划", "Generator maintenance plan", _GENERATOR),
        PlanTemplate("heat_exchanger", "换热站维保计划", "Heat exchange station maintenance plan", _HVAC),
        PlanTemplate("chiller", "冷水机组维保计划", "Chiller maintenance plan", _HVAC),
        PlanTemplate("boiler", "锅炉维保计划", "Boiler maintenance plan", _HVAC),
        PlanTemplate("ahu", "空调机组维保计划", "Air handling unit maintenance plan", _HVAC),
        PlanTemplate("water_tank", "生活水箱维保计划", "Water tank maintenance plan", _WATER_TANK),
        PlanTemplate("meter", "计量表核查计划", "Meter check plan", _METER),
        PlanTemplate("sprinkler", "喷淋系统维保计划", "Sprinkler maintenance plan", _SPRINKLER),
        PlanTemplate("gas_detection", "可燃气体探测系统维保计划", "Gas detection maintenance plan", _GAS_DETECTION),
    )
}
