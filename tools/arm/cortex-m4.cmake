# CMake toolchain file: bare-metal Cortex-M4F (ARMv7E-M, single-precision FPU)
# with Debian's arm-none-eabi-gcc and newlib nano. Optimised for size; the
# linker drops every function and object nothing references.
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)

set(CMAKE_C_COMPILER arm-none-eabi-gcc)
set(CMAKE_ASM_COMPILER arm-none-eabi-gcc)
set(CMAKE_AR arm-none-eabi-ar)
set(CMAKE_RANLIB arm-none-eabi-ranlib)
set(CMAKE_OBJCOPY arm-none-eabi-objcopy CACHE FILEPATH "")
set(CMAKE_SIZE arm-none-eabi-size CACHE FILEPATH "")

# try_compile cannot link without a linker script: test with a static library.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

set(PL_M4_CPU "-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16")
# -Os -DNDEBUG come with the build type MinSizeRel (the default of CMakeLists.txt).
set(CMAKE_C_FLAGS_INIT "${PL_M4_CPU} -ffunction-sections -fdata-sections")
set(CMAKE_ASM_FLAGS_INIT "${PL_M4_CPU}")
set(CMAKE_EXE_LINKER_FLAGS_INIT "${PL_M4_CPU} --specs=nano.specs --specs=nosys.specs -Wl,--gc-sections")

# Host programs (protoc-c) come from the build machine; libraries and headers
# only from the target's sysroot.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
